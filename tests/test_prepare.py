"""prepare_slimpajama.py on small files the tests write: exact round trips for both tokenizers, token targets,
validation splits, kill-and-resume in a real subprocess, bad input, the hub path with local files served in place
of the downloads, and the refusal to overwrite."""

import gzip
import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tiktoken
import zstandard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import prepare_slimpajama as P  # noqa: E402

DOCS = ["Hello world.\nSecond line, caf\u00e9.",
        "\u65e5\u672c\u8a9e and \U0001d518 (4 UTF-8 bytes)",
        "a literal <|endoftext|> inside a document",
        "a NUL \x00 byte in the middle",
        "lone surrogate \ud800 here",
        "  leading and trailing spaces  \n\n"]


def write_jsonl(path, docs, extra_lines=()):
    path = str(path)
    data = "".join(json.dumps({"text": d, "meta": {"i": i}}) + "\n" for i, d in enumerate(docs))
    data = (data + "".join(extra_lines)).encode()
    with open(path, "wb") as f:
        f.write(zstandard.ZstdCompressor().compress(data) if path.endswith(".zst") else data)
    return path


def write_txt(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(path)


def prepare(out_dir, *args):
    P.main([f"--out_dir={out_dir}", "--commit_seconds=0", *args])
    with open(os.path.join(out_dir, "meta.json")) as f:
        return json.load(f)


def bins(out_dir):
    return [np.fromfile(os.path.join(out_dir, f"{s}.bin"), dtype=np.uint16) for s in ("train", "val")]


def decode(tokens, tokenizer):
    """The documents of a bin, split at the separators (every document ends with one)."""
    eot = 50256 if tokenizer == "r50k_base" else 0
    assert len(tokens) == 0 or tokens[-1] == eot
    ends = np.flatnonzero(tokens == eot)
    pieces = np.split(tokens, ends + 1)[:-1]
    if tokenizer == "bytes":
        return [p[:-1].astype(np.uint8).tobytes().decode("utf-8") for p in pieces]
    enc = tiktoken.get_encoding("r50k_base")
    return [enc.decode(p[:-1].tolist()) for p in pieces]


def expected(doc, tokenizer):
    """What a document decodes back to: lone surrogates become U+FFFD, and the bytes tokenizer drops NUL."""
    doc = doc.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return doc.replace("\x00", "") if tokenizer == "bytes" else doc


@pytest.mark.parametrize("tokenizer", ["bytes", "r50k_base"])
def test_round_trip_every_format(tmp_path, tokenizer):
    a = write_jsonl(tmp_path / "a.jsonl.zst", DOCS[:3])
    b = write_jsonl(tmp_path / "b.jsonl", DOCS[3:])
    c = write_txt(tmp_path / "c.txt", "a whole .txt file\n\nis one document\n")
    v = write_jsonl(tmp_path / "v.jsonl.zst", DOCS[::-1])
    out = tmp_path / "out"
    meta = prepare(out, f"--tokenizer={tokenizer}", "--input", a, b, c, "--val_input", v)
    train, val = bins(out)
    train_docs = DOCS + ["a whole .txt file\n\nis one document\n"]
    assert decode(train, tokenizer) == [expected(d, tokenizer) for d in train_docs]
    assert decode(val, tokenizer) == [expected(d, tokenizer) for d in DOCS[::-1]]
    eot = 50256 if tokenizer == "r50k_base" else 0
    # the separator appears only between documents, never from the text (not even from '<|endoftext|>')
    assert (train == eot).sum() == len(train_docs) and (val == eot).sum() == len(DOCS)
    if tokenizer == "r50k_base":
        enc = tiktoken.get_encoding("r50k_base")
        want = [t for d in train_docs for t in enc.encode_ordinary(d) + [eot]]
        assert train.tolist() == want
    assert meta["tokenizer"] == tokenizer and meta["eot_token"] == eot
    assert meta["vocab_size"] == (50257 if tokenizer == "r50k_base" else 256)
    assert meta["train_tokens"] == len(train) == os.path.getsize(out / "train.bin") // 2
    assert meta["val_tokens"] == len(val)
    assert (meta["train_max_token"], meta["val_max_token"], meta["dtype"]) == (train.max(), val.max(), "uint16")
    assert (meta["train_documents"], meta["val_documents"]) == (len(train_docs), len(DOCS))
    assert meta["train_shards"] == [a, b, c] and meta["val_shards"] == [v]
    assert meta["skipped"] == 0 and meta["skipped_shards"] == []
    if tokenizer == "bytes":
        assert meta["nul_bytes_dropped"] == 2  # DOCS[3] once in train, once in val
    assert not os.path.exists(out / "progress.json")


def test_a_tokenizer_of_another_name_is_one_sentence():
    # as a library: "gpt2" got the bytes tokenizer's vocabulary, then an AttributeError in its first encode
    with pytest.raises(ValueError, match="tokenizer must be 'r50k_base' or 'bytes'; got 'gpt2'"):
        P.Tokenizer("gpt2")


def test_token_targets_stop_at_the_first_document_boundary_past_them(tmp_path):
    rng = np.random.default_rng(0)
    docs = ["x" * int(n) for n in rng.integers(1, 60, size=40)]
    vdocs = ["v" * int(n) for n in rng.integers(1, 60, size=20)]
    t = write_jsonl(tmp_path / "t.jsonl", docs)
    v = write_jsonl(tmp_path / "v.jsonl", vdocs)
    ends = np.cumsum([len(d) + 1 for d in docs])  # bytes: one token per byte plus the separator
    vends = np.cumsum([len(d) + 1 for d in vdocs])
    for target, vtarget in ((int(ends[10]) - 3, int(vends[4]) + 1), (int(ends[10]), int(vends[4]))):
        out = tmp_path / f"out{target}"
        meta = prepare(out, "--tokenizer=bytes", "--input", t, "--val_input", v,
                       f"--train_tokens={target}", f"--val_tokens={vtarget}")
        k, kv = int(np.searchsorted(ends, target)), int(np.searchsorted(vends, vtarget))
        assert (meta["train_tokens"], meta["train_documents"]) == (ends[k], k + 1)
        assert (meta["val_tokens"], meta["val_documents"]) == (vends[kv], kv + 1)
        train, val = bins(out)
        assert decode(train, "bytes") == docs[:k + 1] and decode(val, "bytes") == vdocs[:kv + 1]


def test_val_fraction_holds_out_whole_documents_deterministically(tmp_path):
    shards = [write_jsonl(tmp_path / f"s{i}.jsonl.zst", [f"shard {i} doc {j}" for j in range(n)])
              for i, n in enumerate((37, 21))]
    f = 0.25
    outs = [tmp_path / "o1", tmp_path / "o2"]
    metas = [prepare(o, "--tokenizer=bytes", f"--val_fraction={f}", "--input", str(tmp_path / "*.jsonl.zst"))
             for o in outs]
    assert metas[0] == metas[1]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(bins(outs[0]), bins(outs[1])))
    train, val = (decode(x, "bytes") for x in bins(outs[0]))
    # the documented rule: document j of a shard goes to val.bin when floor((j+1)f) > floor(jf)
    want_val = [f"shard {i} doc {j}" for i, n in enumerate((37, 21)) for j in range(n)
                if int((j + 1) * f) > int(j * f)]
    assert val == want_val
    assert len(val) == int(37 * f) + int(21 * f)
    assert train == [f"shard {i} doc {j}" for i, n in enumerate((37, 21)) for j in range(n)
                     if f"shard {i} doc {j}" not in want_val]
    assert metas[0]["train_shards"] == metas[0]["val_shards"] == shards


def test_val_fraction_counts_documents_exactly_where_floats_round_down(tmp_path):
    # 90 x 0.7 is 62.99999999999999 in floats: document 89 went to train.bin, and the shard held out 62, not 63
    shard = write_jsonl(tmp_path / "s.jsonl", [f"doc {j}" for j in range(90)])
    meta = prepare(tmp_path / "out", "--tokenizer=bytes", "--val_fraction=0.7", "--input", shard)
    train, val = (decode(x, "bytes") for x in bins(tmp_path / "out"))
    assert meta["val_documents"] == len(val) == 63 and "doc 89" in val
    assert [P.route("mixed", j, 0.7) for j in (88, 89, 90)] == ["val", "val", "train"]


def test_val_fraction_takes_the_tail_of_a_txt_file_at_a_line_start(tmp_path, capsys):
    text = "".join(f"line {i} {'.' * (i % 7)}\n" for i in range(300))
    path = write_txt(tmp_path / "book.txt", text)
    meta = prepare(tmp_path / "out", "--input", path, "--tokenizer=bytes", "--val_fraction=0.1")
    (head,), (tail,) = (decode(x, "bytes") for x in bins(tmp_path / "out"))
    cut = int(len(text) * 0.9)
    assert head + tail == text
    assert head.endswith("\n") and len(head) >= cut and "\n" not in head[cut:-1]
    assert (meta["train_documents"], meta["val_documents"]) == (1, 1)
    assert "train tokens (1 document), " in capsys.readouterr().out  # not "(1 documents)"
    meta = prepare(tmp_path / "whole", "--input", path, "--tokenizer=bytes", "--val_fraction=0")
    assert decode(bins(tmp_path / "whole")[0], "bytes") == [text] and meta["val_tokens"] == 0


def test_a_txt_file_with_cr_line_ends_is_split_at_a_line_start(tmp_path):
    # a classic Mac file (CR only) has no LF: it was refused as one long line, "give more text or lines"; CRLF and
    # LF files are cut where they were
    for i, end in enumerate(["\r", "\r\n", "\n"]):
        text = "".join(f"line {j} {'.' * (j % 7)}{end}" for j in range(300))
        path = write_txt(tmp_path / f"book{i}.txt", text)
        prepare(tmp_path / f"out{i}", "--input", path, "--tokenizer=bytes", "--val_fraction=0.1")
        (head,), (tail,) = (decode(x, "bytes") for x in bins(tmp_path / f"out{i}"))
        assert head + tail == text and head.endswith(end) and tail.startswith("line 27")

def test_a_txt_file_with_a_utf8_byte_order_mark_is_its_text_alone(tmp_path):
    # Notepad's "UTF-8 with BOM": the mark was the document's first character (3 bytes, ef bb bf), as a .jsonl's
    # never was
    text = "".join(f"line {j}\n" for j in range(300))
    write_txt(tmp_path / "plain.txt", text)
    write_txt(tmp_path / "bom.txt", "\ufeff" + text)
    for name in ("plain", "bom"):
        prepare(tmp_path / name, "--input", str(tmp_path / f"{name}.txt"), "--tokenizer=bytes", "--val_fraction=0.1")
    (head,), (tail,) = (decode(x, "bytes") for x in bins(tmp_path / "bom"))
    assert head + tail == text
    assert all((a == b).all() for a, b in zip(bins(tmp_path / "plain"), bins(tmp_path / "bom")))


def test_killed_runs_resume_to_byte_identical_bins(tmp_path):
    rng = np.random.default_rng(1)
    words = np.array(["the", "model", "shares", "keys", "and", "values", "attention", "cache", "token", "run"])
    for i in range(10):
        write_jsonl(tmp_path / f"shard_{i}.jsonl.zst",
                    [" ".join(rng.choice(words, size=int(rng.integers(50, 400)))) for _ in range(600)])
    args = ["--input", str(tmp_path / "*.jsonl.zst"), "--val_fraction=0.05", "--threads=1", "--val_tokens=20000"]
    want = prepare(tmp_path / "whole", *args)

    out = tmp_path / "killed"
    cmd = [sys.executable, os.path.join(ROOT, "prepare_slimpajama.py"), f"--out_dir={out}", "--commit_seconds=0", *args]
    progress, seen, kills = out / "progress.json", None, []
    # kill at the first sign of life (before any token is committed), then after each of three later commits
    for k in range(4):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while proc.poll() is None:
            try:
                with open(progress) as f:
                    now = json.load(f)["next"]
            except (FileNotFoundError, json.JSONDecodeError):
                now = None
            if now is not None and (k == 0 or now != seen):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append(now)
                seen = now
                break
            time.sleep(0.002)
        assert proc.returncode == -signal.SIGKILL, f"run {k} ended before it could be killed: {proc.stderr.read()}"
        assert not os.path.exists(out / "meta.json")
    assert kills[-1] > kills[1] > [0, 0]
    # a kill between a write and its commit leaves bytes past the committed length: the resume drops them
    with open(out / "train.bin", "ab") as f:
        f.write(b"\xff" * 1001)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out / "meta.json") as f:
        assert json.load(f) == want
    assert all(a.tobytes() == b.tobytes() for a, b in zip(bins(out), bins(tmp_path / "whole")))


def test_bad_json_line_stops_with_file_and_line_and_skip_bad_continues(tmp_path):
    good = write_jsonl(tmp_path / "a.jsonl.zst", ["first shard"] * 3)
    bad = write_jsonl(tmp_path / "b.jsonl.zst", ["one", "two", "three"],
                      extra_lines=['{"text": "four"\n', '{"no_text": 1}\n', '{"text": "six"}\n'])
    out = tmp_path / "out"
    args = ["--tokenizer=bytes", "--val_fraction=0", "--input", good, bad]
    with pytest.raises(SystemExit) as e:
        prepare(out, *args)
    assert f"{bad}:4:" in str(e.value) and "--skip_bad" in str(e.value)
    # a repaired file cannot resume the committed progress (its size changed): the advice says to start over
    assert f"fix it and delete {out} to start over" in str(e.value)
    with pytest.raises(SystemExit) as e:  # the same files in another order: they did not change, their order did
        prepare(out, "--tokenizer=bytes", "--val_fraction=0", "--input", bad, good, "--skip_bad")
    assert "another list or order of files" in str(e.value) and "in the same order" in str(e.value)
    # nothing before the bad line is lost: it is written and committed
    with open(out / "progress.json") as f:
        st = json.load(f)
    assert decode(bins(out)[0], "bytes") == ["first shard"] * 3 + ["one", "two", "three"]
    assert st["tokens"]["train"] == len(bins(out)[0]) and st["next"] == [1, 3]
    meta = prepare(out, *args, "--skip_bad")
    fresh = prepare(tmp_path / "fresh", *args, "--skip_bad=True")
    assert meta == fresh and meta["skipped"] == 2
    assert bins(out)[0].tobytes() == bins(tmp_path / "fresh")[0].tobytes()
    assert decode(bins(out)[0], "bytes") == ["first shard"] * 3 + ["one", "two", "three", "six"]


def test_corrupt_and_truncated_zst_and_bad_utf8(tmp_path):
    good = write_jsonl(tmp_path / "s0.jsonl.zst", ["good"] * 5)
    corrupt = write_jsonl(tmp_path / "s1.jsonl.zst", ["lost"] * 5)
    with open(corrupt, "r+b") as f:
        f.write(b"\x00\x00\x00\x00")  # no zstd frame starts like this
    truncated = write_jsonl(tmp_path / "s2.jsonl.zst", [f"doc {i} " + "z" * 2000 for i in range(200)])
    with open(truncated, "r+b") as f:
        f.truncate(os.path.getsize(truncated) // 2)
    args = ["--tokenizer=bytes", "--val_fraction=0"]
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "a", *args, "--input", good, corrupt)
    assert f"{corrupt}: corrupt zstd data after line 0" in str(e.value)
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "b", *args, "--input", truncated)
    assert f"{truncated}: corrupt zstd data after line" in str(e.value) and "middle of a zstd frame" in str(e.value)
    meta = prepare(tmp_path / "c", *args, "--skip_bad", "--input", good, corrupt, truncated)
    assert meta["skipped_shards"] == [corrupt, truncated] and meta["skipped"] == 0
    docs = decode(bins(tmp_path / "c")[0], "bytes")
    assert docs[:5] == ["good"] * 5 and docs[5:] == [f"doc {i} " + "z" * 2000 for i in range(len(docs) - 5)]
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("line one\nline two\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d", *args, "--input", str(latin1))
    assert f"{latin1}:3: not UTF-8" in str(e.value)
    # "not UTF-8 (invalid continuation byte); fix it" said nothing of how: Latin-1 and Windows-1252 are named
    # and the file: "iconv -f WINDOWS-1252 -t UTF-8" named none, and iconv f > f empties f
    assert f"it reads as Windows-1252 or Latin-1 text: convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8 {latin1} > " \
           f"{tmp_path / 'latin1_2.txt'}, and give {tmp_path / 'latin1_2.txt'} in its place" in str(e.value)
    # the command runs as printed from a folder named with a space or $: 'my data/x.txt > my data/x_2.txt' wrote a
    # file named my and read none, runs$old/x.txt read runs/x.txt
    (tmp_path / "my data$old").mkdir()
    spaced = tmp_path / "my data$old" / "latin1.txt"
    spaced.write_bytes(latin1.read_bytes())
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d2", *args, "--input", str(spaced))
    command = str(e.value).split("e.g. ")[1].split(", and give")[0]
    subprocess.run(["sh", "-c", command], check=True, cwd=tmp_path)
    assert (tmp_path / "my data$old" / "latin1_2.txt").read_text() == "line one\nline two\ncaf\u00e9\n"
    utf16 = tmp_path / "utf16.txt"  # Windows PowerShell 5's `>`: "not UTF-8 (invalid start byte); fix it"
    utf16.write_bytes("line one\n".encode("utf-16"))
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "e", *args, "--input", str(utf16))
    # refused before out_dir begins, as a binary .txt is: "delete e to start over" once converted
    assert str(e.value) == f"error: {utf16} is not UTF-8; it is UTF-16 (it starts with UTF-16's byte order mark): " \
                           f"convert it, e.g. iconv -f UTF-16 -t UTF-8 {utf16} > {tmp_path / 'utf16_2.txt'}, and " \
                           f"give {tmp_path / 'utf16_2.txt'} in its place (out of a folder or glob given as input, " \
                           f"move {utf16} away); or rerun with --skip_bad to skip and count such input"
    assert not (tmp_path / "e").exists()
    # a character of two UTF-16 units (an emoji) cut by the first bytes judged (SNIFF): "not text ... as in a binary
    # file or UTF-16 text without a byte-order mark", of a file that starts with one
    utf16.write_text("a" * (P.SNIFF // 2 - 2) + "\U0001F600" + "b" * 100, encoding="utf-16")
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "f", *args, "--input", str(utf16))
    assert f"{utf16} is not UTF-8; it is UTF-16 (it starts with UTF-16's byte order mark)" in str(e.value)
    # Chinese saved by Notepad as "Unicode", without a newline: no ASCII, so 4570872 took it for FF FE glued before
    # UTF-8 text, and it was "not text ... as in UTF-16 text without a byte-order mark", of a file that starts with one
    for codec in ("utf-16", "utf-16-be"):
        utf16.write_bytes((b"\xfe\xff" if codec.endswith("be") else b"") + "中文的文本。这是一个测试。".encode(codec) * 50)
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / codec, *args, "--input", str(utf16))
        assert f"{utf16} is not UTF-8; it is UTF-16 (it starts with UTF-16's byte order mark)" in str(e.value)


def test_prepare_names_a_utf16_jsonl_and_a_jsonl_of_another_field(tmp_path):
    # json.loads reads a line of UTF-16 too: the first document went into train.bin, then "line 2: not a JSON
    # object" with no word of UTF-16; with --skip_bad, one document kept and the rest skipped
    docs = "".join(json.dumps({"text": f"document {i} " + "x" * 50}) + "\n" for i in range(40))
    utf16 = tmp_path / "u16.jsonl"
    utf16.write_bytes(docs.encode("utf-16"))
    args = ["--tokenizer=bytes", "--val_fraction=0.1"]
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "a", *args, "--input", str(utf16))
    assert str(e.value).startswith(f"error: {utf16} is not UTF-8; it is UTF-16 (it starts with UTF-16's byte order")
    assert not (tmp_path / "a").exists()
    # without its mark (Python's utf-16-le), its first line was a document and line 2 a decoding error; in
    # Windows-1252 (é) each line was "not a JSON object (UnicodeDecodeError(...", no word of the encoding
    (tmp_path / "le.jsonl").write_bytes(docs.encode("utf-16-le"))
    (tmp_path / "cp.jsonl").write_bytes("".join(json.dumps({"text": f"caf\u00e9 {i}"}, ensure_ascii=False) + "\n"
                                                for i in range(40)).encode("cp1252"))
    for name, why in (("le.jsonl", "not UTF-8; it is UTF-16 without a byte-order mark (every other byte NUL): "
                       "convert it, e.g. iconv -f UTF-16LE -t UTF-8 {0} > {1}, and give {1} in its place (out of a "
                       "folder or glob given as input, move {0} away)"),
                      ("cp.jsonl", "not UTF-8 (invalid continuation byte; it reads as Windows-1252 or Latin-1 text: "
                       "convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8 {0} > {1}, and give {1} in its place (out "
                       "of a folder or glob given as input, move {0} away))")):
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "w", *args, "--input", str(tmp_path / name))
        why = why.format(tmp_path / name, tmp_path / name.replace(".jsonl", "_2.jsonl"))  # the .jsonl's name is taken
        assert str(e.value).startswith(f"error: {tmp_path / name}:1: {why}; fix it")
        shutil.rmtree(tmp_path / "w")
        (tmp_path / "g.jsonl").write_text(docs)
        meta = prepare(tmp_path / "w", *args, "--input", str(tmp_path / name), str(tmp_path / "g.jsonl"), "--skip_bad")
        # UTF-16 is skipped whole; a line not UTF-8 is a line (one stray byte in a large shard is not its file)
        assert (meta["skipped_shards"], meta["skipped"]) == (([str(tmp_path / name)], 0) if name == "le.jsonl" else
                                                             ([], 40))
        shutil.rmtree(tmp_path / "w")
    # one stray Latin-1 byte after lines of UTF-8 (caf\u00e9): iconv of the file from Windows-1252, as advised, made
    # every \u00e9 before it \u00c3\u00a9; only that line is to be fixed
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes("".join(json.dumps({"text": f"caf\u00e9 {i}"}, ensure_ascii=False) + "\n" for i in range(9))
                      .encode() + b'{"text": "caf\xe9"}\n')
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "w", *args, "--input", str(mixed))
    assert str(e.value).startswith(f"error: {mixed}:10: not UTF-8 (invalid continuation byte; the lines before it are "
                                   f"UTF-8 beyond ASCII: fix this line, not the file's encoding); fix it")
    shutil.rmtree(tmp_path / "w")
    # and the same in a .txt, or earlier in the line: the text before the byte is UTF-8 beyond ASCII
    for name, data in (("mixed.txt", "caf\u00e9\n".encode() * 9 + b"caf\xe9\n"),
                       ("one.jsonl", b'{"text": "\xc3\xa9 \xe9"}\n')):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "w", *args, "--input", str(tmp_path / name))
        assert "not UTF-8 (invalid continuation byte; the text before it is UTF-8 beyond ASCII: fix that byte, not " \
               "the file's encoding); fix it" in str(e.value)
        shutil.rmtree(tmp_path / "w")
    good = tmp_path / "good.jsonl"
    good.write_text(docs)
    meta = prepare(tmp_path / "b", *args, "--input", str(utf16), str(good), "--skip_bad")
    assert meta["skipped_shards"] == [str(utf16)] and meta["train_documents"] + meta["val_documents"] == 40
    # the last line says what --skip_bad skipped: a whole file of another field name was skipped without a word
    lines = []
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"content": "a document"}) + "\n")
    P.prepare(P.parse_args([*args, "--input", str(good), str(other), "--skip_bad", "--out_dir", str(tmp_path / "s")]),
              log=lines.append)
    assert lines[-1].endswith("; skipped 1 bad line(s) and 0 bad file(s) (meta.json: skipped, skipped_shards)")
    # another corpus's field name, or 'text' one level down: "--skip_bad" alone skipped every line into "no text"
    for row, jq in (({"id": 1, "content": "a document"}, ".content"), ({"doc": {"text": "a document"}}, ".doc.text")):
        other = tmp_path / "other.jsonl"
        other.write_text(json.dumps(row) + "\n")
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "c", *args, "--input", str(other))
        fields = ", ".join(map(repr, row))
        assert f"{other}:1: no 'text' field (its fields: {fields}); prepare reads each line's 'text' string: rename " \
               f"the field holding the document, e.g. jq -c '{{text: {jq}}}' {other} > " \
               f"{tmp_path / 'other_text.jsonl'}, and give {tmp_path / 'other_text.jsonl'} in its place (out of a " \
               f"folder or glob given as input, move {other} away); fix it" in str(e.value)
        shutil.rmtree(tmp_path / "c")
    # two corpora concatenated ('text' lines, then 'content' ones): '{text: .content}' made every 'text' line null
    other.write_text(json.dumps({"text": "a document"}) + "\n" + json.dumps({"content": "another"}) + "\n")
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "c", *args, "--input", str(other))
    assert f"{other}:2: no 'text' field (its fields: 'content'); prepare reads each line's 'text' string: rename the " \
           f"field holding the document, e.g. jq -c '{{text: (.text // .content)}}' {other} > " in str(e.value)
    shutil.rmtree(tmp_path / "c")
    # plain JSON Lines named .jsonl.zst: "corrupt zstd data after line 0", with out_dir begun, said no rename
    (tmp_path / "plain.jsonl.zst").write_text(json.dumps({"text": "a document"}) + "\n")
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "c", *args, "--input", str(tmp_path / "plain.jsonl.zst"))
    assert f"is not zstd-compressed: it is plain JSON Lines; rename it, e.g. mv {tmp_path / 'plain.jsonl.zst'} " \
           f"{tmp_path / 'plain.jsonl'}" in str(e.value) and not (tmp_path / "c").exists()
    # compressed: jq cannot read zstd, and a UTF-16 shard's first line was read as a document too
    # (beside it, in a name not taken: "> text.jsonl" for each of a corpus's shards wrote each over the one before)
    (tmp_path / "other_text.jsonl").write_text("the user's\n")
    for name, data in (("other.jsonl.zst", json.dumps({"content": "a document"}) + "\n"), ("u16.jsonl.zst", docs)):
        (tmp_path / name).write_bytes(zstandard.ZstdCompressor().compress(data.encode("utf-16" if "16" in name
                                                                                      else "utf-8")))
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "z", *args, "--input", str(tmp_path / name))
        assert (f"zstd -dc {tmp_path / name} | jq -c '{{text: .content}}' > {tmp_path / 'other_text_2.jsonl'}"
                if "other" in name else
                f"{tmp_path / name}:1: not UTF-8; it is UTF-16") in str(e.value)
        shutil.rmtree(tmp_path / "z")
    # the UTF-16 shard's iconv converted its compressed bytes: it is decompressed first, into a name not taken (the
    # u16.jsonl above is the user's)
    advice = str(e.value).split("; fix it")[0]
    assert f"e.g. zstd -dc {tmp_path / 'u16.jsonl.zst'} | iconv -f UTF-16 -t UTF-8 > {tmp_path}/u16" in advice
    assert (tmp_path / "u16.jsonl").exists() and not os.path.lexists(advice.rsplit("> ", 1)[1])


def test_a_jsonl_of_plain_lines_strings_or_python_dicts_is_told_how_to_make_it_json_lines(tmp_path):
    # a .jsonl a user wrote by hand: "not a JSON object ...; fix it, or --skip_bad", which skipped every line
    docs = [f"document {i}" for i in range(40)]
    for name, line, fix in (
            ("plain.jsonl", str, "the lines are plain text, not JSON: make each one a document, e.g. jq -R -c "
             "'{{text: .}}' {0} > {1}, and give {1} in its place (out of a folder or glob given as input, move {0} "
             "away)"),
            ("strings.jsonl", json.dumps, "each line is a JSON string, not an object: make each one a document, e.g. "
             "jq -c '{{text: .}}' {0} > {1}, and give {1} in its place (out of a folder or glob given as input, move "
             "{0} away)"),
            ("repr.jsonl", lambda d: str({"text": d}), "it is Python's str() of a dict, not JSON: write each line "
             "with json.dumps(...)")):
        path = tmp_path / name
        path.write_text("".join(line(d) + "\n" for d in docs))
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "d", "--tokenizer=bytes", "--input", str(path))
        assert f"; {fix.format(path, tmp_path / name.replace('.jsonl', '_text.jsonl'))}; fix it" in str(e.value)
        shutil.rmtree(tmp_path / "d")
    # one bad line among documents is that line's, not the file's
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"text": "a document"}) + "\nnot json\n")
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d", "--tokenizer=bytes", "--input", str(path))
    assert "(JSONDecodeError('Expecting value: line 1 column 1 (char 0)')); fix it" in str(e.value)


def test_a_folder_names_the_files_it_leaves_out(tmp_path):
    # a corpus's .jsonl.gz and .json beside its .txt: left out without a word, exit 0 with a third of the text
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("To be, or not to be, that is the question.\n" * 40)
    (corpus / ".git").mkdir()  # the corpus under version control: its .git/ is no input left out
    for name in ("docs.jsonl.gz", "more.json", "README.md", ".DS_Store", ".git/HEAD"):
        (corpus / name).write_bytes(b"x")
    lines = []
    meta = P.prepare(P.parse_args(["--input", str(corpus), "--tokenizer=bytes", "--val_fraction=0.1",
                                   "--out_dir", str(tmp_path / "d")]), log=lines.append)
    assert meta["train_shards"] == [str(corpus / "a.txt")]
    assert lines[0] == (f"note: --input {corpus}: 3 file(s) not .jsonl.zst, .jsonl, .txt left out (README.md, "
                        f"docs.jsonl.gz, more.json); convert any that hold documents")
    # a file added to the folder since: "made with other settings (shards: 1, not 2; shards_sha1: '...', not '...')"
    (corpus / "b.txt").write_text("Whether 'tis nobler in the mind to suffer\n" * 40)
    with pytest.raises(SystemExit) as e:
        P.prepare(P.parse_args(["--input", str(corpus), "--tokenizer=bytes", "--val_fraction=0.1",
                                "--out_dir", str(tmp_path / "d")]), log=lines.append)
    assert str(e.value).startswith(f"error: the input files changed since {tmp_path / 'd'} was made from them (2 "
                                   f"files, not 1; another list or order of files")
    # the folder's data prepared again from one of its files: "1 file, not 2", not "1 files"
    args = ["--tokenizer=bytes", "--val_fraction=0.1", "--out_dir", str(tmp_path / "d2")]
    P.prepare(P.parse_args(["--input", str(corpus)] + args), log=lines.append)
    with pytest.raises(SystemExit) as e:
        P.prepare(P.parse_args(["--input", str(corpus / "a.txt")] + args), log=lines.append)
    assert "(1 file, not 2; another list" in str(e.value)
    # cut short (progress.json, no meta.json): "moved since, delete it" after the files named read as the folder
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    os.remove(tmp_path / "d" / "meta.json")
    (tmp_path / "d" / "progress.json").write_text(json.dumps({
        "settings": meta["settings"], "next": [0, 0], "tokens": {"train": 0, "val": 0},
        "documents": {"train": 0, "val": 0}, "shards": {"train": [], "val": []}, "skipped": 0, "skipped_shards": [],
        "nul_bytes_dropped": 0}))
    with pytest.raises(SystemExit) as e:
        P.prepare(P.parse_args(["--input", str(corpus), "--tokenizer=bytes", "--val_fraction=0.1",
                                "--out_dir", str(tmp_path / "d")]), log=lines.append)
    assert str(e.value).endswith("(a run cut short resumes from its files where they were: moved since, start over "
                                 "as said)")
    shutil.rmtree(tmp_path / "d")
    os.remove(corpus / "b.txt")
    # an out_dir inside the input's folder: its own files are no input, prepared again or not
    lines.clear()
    args = ["--input", str(corpus), "--tokenizer=bytes", "--val_fraction=0.1", "--out_dir", str(corpus / "prep")]
    for _ in range(2):
        P.prepare(P.parse_args(args), log=lines.append)
    assert [line for line in lines if "prep" in line and line.startswith("note")] == []


def test_val_fraction_counts_documents_not_blank_lines(tmp_path):
    # a blank line after each document: every 10th line, held out, was a blank one, so 300 documents gave val.bin
    # nothing ("give more text or lines", which gave it nothing again)
    docs = [json.dumps({"text": f"document {i} " + "x" * 20}) + "\n" for i in range(300)]
    plain, spaced = tmp_path / "plain.jsonl", tmp_path / "spaced.jsonl"
    plain.write_text("".join(docs))
    spaced.write_text("".join(d + "\n" for d in docs))
    args = ["--tokenizer=bytes", "--val_fraction=0.1"]
    prepare(tmp_path / "a", *args, "--input", str(plain))
    meta = prepare(tmp_path / "b", *args, "--input", str(spaced))
    assert meta["val_documents"] == 30
    assert all((x == y).all() for x, y in zip(bins(tmp_path / "a"), bins(tmp_path / "b")))
    # a resume starts at a line: the documents from there on are routed as in a run from the start
    whole = list(P.documents(str(spaced), "mixed", 0.1, 0))
    assert list(P.documents(str(spaced), "mixed", 0.1, 301)) == [d for d in whole if d[0] >= 301]


def test_a_run_cut_short_before_documents_were_counted_resumes_by_its_own_rule(tmp_path):
    # a .jsonl with some blank lines, prepared by a version that held out by line number and cut short, then resumed
    # after a git pull: the new rule from the cut on held out documents of neither version's split, exit 0
    lines = [json.dumps({"text": f"document {i} " + "x" * 20}) + "\n" + ("\n" if i % 7 == 0 else "")
             for i in range(300)]
    spaced = tmp_path / "spaced.jsonl"
    spaced.write_text("".join(lines))
    args = ["--tokenizer=bytes", "--val_fraction=0.1", "--input", str(spaced)]
    fresh = prepare(tmp_path / "fresh", *args)
    old = older_start(tmp_path / "old", fresh["settings"])  # that version's: no val_by
    by_line = [j for j, line in enumerate("".join(lines).splitlines()) if line and P.route("mixed", j, 0.1) == "val"]
    assert prepare(old, *args)["val_documents"] == len(by_line) != fresh["val_documents"]


def older_start(old, settings, **recorded):
    """out_dir as an older version left it at its start: empty bins and its progress.json, nothing committed."""
    old.mkdir()
    for s in ("train", "val"):
        (old / f"{s}.bin").write_bytes(b"")
    (old / "progress.json").write_text(json.dumps(
        {"settings": settings, "next": [0, 0], "tokens": {"train": 0, "val": 0},
         "documents": {"train": 0, "val": 0}, "shards": {"train": [], "val": []}, "skipped": 0,
         "skipped_shards": [], "nul_bytes_dropped": 0, **recorded}))
    return old


def test_a_run_cut_short_before_the_split_in_integers_resumes_in_floats(tmp_path):
    # a shard of 90 documents at --val_fraction=0.7 held out 62 in floats, 63 in integers (a7bf8ea): a run cut short
    # by the older version and resumed after a git pull split its shards by neither rule, exit 0
    shards = [write_jsonl(tmp_path / f"s{i}.jsonl", [f"shard {i} doc {j}" for j in range(90)]) for i in range(2)]
    args = ["--tokenizer=bytes", "--val_fraction=0.7", "--input", *shards]
    fresh = prepare(tmp_path / "fresh", *args)
    old = older_start(tmp_path / "old", fresh["settings"], val_by="document")  # that version's: no val_split
    assert (prepare(old, *args)["val_documents"], fresh["val_documents"]) == (2 * 62, 2 * 63)


def test_a_prepared_dataset_given_as_input_is_named_so(tmp_path):
    # --input data/x (train.py's --data_dir confused with it): "convert any that hold documents" of its bins
    text = write_txt(tmp_path / "a.txt", "To be, or not to be, that is the question.\n" * 40)
    prepare(tmp_path / "d", "--tokenizer=bytes", "--val_fraction=0.1", "--input", text)
    fix = (f"{tmp_path / 'd'} holds a dataset prepare_slimpajama.py wrote (token ids, not text): give the text it was "
           f"prepared from, or train on it with train.py --data_dir={tmp_path / 'd'}")
    for given, said in ((tmp_path / "d", "holds no .jsonl.zst, .jsonl, .txt file"),
                        (tmp_path / "d" / "train.bin", "is not .jsonl.zst, .jsonl, .txt")):
        with pytest.raises(SystemExit) as e:
            P.prepare(P.parse_args(["--input", str(given), "--tokenizer=bytes", "--out_dir", str(tmp_path / "e")]),
                      log=lambda line: None)
        assert str(e.value) == f"error: --input {given} {said}; {fix}"


def test_an_extension_in_upper_case_is_told_to_be_renamed(tmp_path):
    # Windows' NOTES.TXT: "is not .jsonl.zst, .jsonl, .txt; convert it", of a text file
    (tmp_path / "in").mkdir()
    upper = write_txt(tmp_path / "in" / "NOTES.TXT", "To be, or not to be, that is the question.\n" * 40)
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d", "--tokenizer=bytes", "--input", upper)
    assert str(e.value) == (f"error: --input {upper} is not .jsonl.zst, .jsonl, .txt; the extension is read in lower "
                            f"case: rename it to .txt")
    lines = []
    with pytest.raises(SystemExit):  # in a folder: named in the note
        P.prepare(P.parse_args(["--input", str(tmp_path / "in"), "--tokenizer=bytes", "--out_dir",
                                str(tmp_path / "d")]), log=lines.append)
    assert lines[0].endswith("convert any that hold documents; NOTES.TXT: the extension is read in lower case: "
                             "rename it to .txt")
    # documents as .json: JSON Lines under another name, or an array of objects; "convert it" said neither how
    docs = [{"text": f"document {i}"} for i in range(3)]
    for name, data, fix in (("lines.json", "".join(json.dumps(d) + "\n" for d in docs), "one JSON object a line is "
                             f"JSON Lines: rename it to {tmp_path / 'lines.jsonl'}"),
                            ("array.json", json.dumps(docs), "an array of documents goes one a line into a .jsonl: "
                             f"jq -c '.[]' {tmp_path / 'array.json'} > {tmp_path / 'array.jsonl'}")):
        (tmp_path / name).write_text(data)
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "d", "--tokenizer=bytes", "--input", str(tmp_path / name))
        assert str(e.value) == f"error: --input {tmp_path / name} is not .jsonl.zst, .jsonl, .txt; {fix}"
        # a .jsonl of that name is the user's: jq's > or mv wrote over it
        (tmp_path / name).with_suffix(".jsonl").write_text("mine\n")
        with pytest.raises(SystemExit, match=f"{tmp_path / name.replace('.json', '_2.jsonl')}$"):
            prepare(tmp_path / "d", "--tokenizer=bytes", "--input", str(tmp_path / name))
        os.remove((tmp_path / name).with_suffix(".jsonl"))
        lines.clear()  # in a folder: the note gave "convert any that hold documents" alone
        (tmp_path / "in" / name).write_text(data)
        with pytest.raises(SystemExit):
            P.prepare(P.parse_args(["--input", str(tmp_path / "in"), "--tokenizer=bytes", "--out_dir",
                                    str(tmp_path / "d")]), log=lines.append)
        assert lines[0].endswith(f"{name}: {fix.replace(str(tmp_path), str(tmp_path / 'in'))}")
        # converted as advised, in the folder: the note told to convert it again, to NAME_2.jsonl (its documents twice)
        (tmp_path / "in" / name).with_suffix(".jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        lines.clear()
        with pytest.raises(SystemExit):
            P.prepare(P.parse_args(["--input", str(tmp_path / "in"), "--tokenizer=bytes", "--out_dir",
                                    str(tmp_path / "d")]), log=lines.append)
        assert lines[0].endswith(f"{name}: {tmp_path / 'in' / name.replace('.json', '.jsonl')} beside it is read: "
                                 f"nothing more to do where it holds the same documents (as advised)")
        os.remove(tmp_path / "in" / name)
        os.remove((tmp_path / "in" / name).with_suffix(".jsonl"))


def test_a_skip_bad_rerun_that_finds_no_text_removes_the_folder_the_refused_run_began(tmp_path):
    # refused on a Latin-1 file, prepare leaves its folder to resume; the advised --skip_bad rerun found no text and
    # left that folder empty (the twentieth pass). A folder the user made stays.
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9 au lait\n".encode("latin-1") * 50)
    args = ["--tokenizer=bytes", "--input", str(latin1)]
    mine = tmp_path / "mine"
    mine.mkdir()
    for out in (tmp_path / "d", mine):
        with pytest.raises(SystemExit, match="not UTF-8"):
            prepare(out, *args)
        assert sorted(os.listdir(out)) == ["progress.json", "train.bin", "val.bin"]  # resumable, as it says
        with pytest.raises(SystemExit, match="^error: the input holds no text for train.bin"):
            prepare(out, *args, "--skip_bad")
    assert not (tmp_path / "d").exists() and os.listdir(mine) == []


def test_a_run_that_leaves_nothing_removes_the_parents_of_out_dir_it_made(tmp_path):
    # --out_dir=n/b/c with no n: a run that found no text (at once, or on its --skip_bad rerun) removed c and left
    # n/b behind. A progress.json from before made_dir says nothing of who made them: they stay.
    import json
    latin1, empty = tmp_path / "latin1.txt", tmp_path / "empty.txt"
    latin1.write_bytes("caf\u00e9 au lait\n".encode("latin-1") * 50)
    empty.write_text("")
    with pytest.raises(SystemExit, match="holds no text"):
        prepare(tmp_path / "n" / "b" / "c", "--tokenizer=bytes", "--input", str(empty))
    assert sorted(os.listdir(tmp_path)) == ["empty.txt", "latin1.txt"]
    args = ["--tokenizer=bytes", "--input", str(latin1)]
    for old in (False, True):
        out = tmp_path / "n" / "b" / "c"
        with pytest.raises(SystemExit, match="not UTF-8"):
            prepare(out, *args)
        if old:
            state = json.loads((out / "progress.json").read_text())
            del state["made_dir"]
            (out / "progress.json").write_text(json.dumps(state))
        with pytest.raises(SystemExit, match="holds no text"):
            prepare(out, *args, "--skip_bad")
        assert not (tmp_path / "n").exists() if not old else os.listdir(out) == []
    # --out_dir=n/../m with no n: makedirs makes n too (the path reaches m through it), which the folders counted
    # from the normal form (m alone) never named, and both runs left n behind
    shutil.rmtree(tmp_path / "n")
    out = f"{tmp_path / 'n'}/../m"
    with pytest.raises(SystemExit, match="holds no text"):
        prepare(out, "--tokenizer=bytes", "--input", str(empty))
    assert sorted(os.listdir(tmp_path)) == ["empty.txt", "latin1.txt"]
    with pytest.raises(SystemExit, match="not UTF-8"):
        prepare(out, *args)
    with pytest.raises(SystemExit, match="holds no text"):
        prepare(out, *args, "--skip_bad")
    assert sorted(os.listdir(tmp_path)) == ["empty.txt", "latin1.txt"]


def test_hub_path_lists_and_downloads_shards_in_natural_order(tmp_path, monkeypatch):
    import huggingface_hub
    hub = tmp_path / "hub"
    names = ["train/chunk1/example_train_10.jsonl.zst", "train/chunk1/example_train_2.jsonl.zst",
             "train/chunk2/example_train_0.jsonl.zst", "train/chunk1/example_train_0.jsonl.zst",
             "validation/chunk1/example_holdout_1.jsonl.zst", "validation/chunk1/example_holdout_0.jsonl.zst",
             "test/chunk1/example_holdout_0.jsonl.zst"]
    for name in names:
        (hub / os.path.dirname(name)).mkdir(parents=True, exist_ok=True)
        write_jsonl(str(hub / name), [f"{name} doc {j}" for j in range(3)])
    calls = []

    def list_repo_files(repo_id, repo_type=None):
        calls.append(("list", repo_id, repo_type))
        return names + [".gitattributes", "README.md"]

    def hf_hub_download(repo_id, filename, repo_type=None):
        calls.append(("download", repo_id, repo_type, filename))
        return str(hub / filename)

    monkeypatch.setattr(P, "hub_error", lambda: None)  # the hub is reachable: these stand in for it
    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    order = ["train/chunk1/example_train_0.jsonl.zst", "train/chunk1/example_train_2.jsonl.zst",
             "train/chunk1/example_train_10.jsonl.zst", "train/chunk2/example_train_0.jsonl.zst"]
    meta = prepare(tmp_path / "out", "--tokenizer=bytes")
    train, val = (decode(x, "bytes") for x in bins(tmp_path / "out"))
    assert train == [f"{n} doc {j}" for n in order for j in range(3)]
    assert val == [f"validation/chunk1/example_holdout_{i}.jsonl.zst doc {j}" for i in range(2) for j in range(3)]
    assert meta["train_shards"] == order and meta["source"] == "hf://datasets/cerebras/SlimPajama-627B"
    assert all(c[1:3] == ("cerebras/SlimPajama-627B", "dataset") for c in calls)
    assert sorted(c[3] for c in calls if c[0] == "download") == sorted(n for n in names if not n.startswith("test"))
    with pytest.raises(SystemExit) as e:
        P.main([f"--out_dir={tmp_path / 'x'}", "--val_fraction=0.1"])
    assert e.value.code == 2


def test_a_download_failing_mid_run_says_so_and_the_same_command_resumes(tmp_path, monkeypatch):
    # a dropped connection (requests' errors are OSErrors) was "writing OUT failed (None); free space or fix the
    # folder", and the shards read before it were not committed
    import huggingface_hub
    import requests
    names = ["validation/chunk1/example_holdout_0.jsonl.zst"] + [f"train/chunk1/example_train_{i}.jsonl.zst"
                                                                  for i in range(3)]
    for name in names:
        (tmp_path / "hub" / os.path.dirname(name)).mkdir(parents=True, exist_ok=True)
        write_jsonl(str(tmp_path / "hub" / name), [f"{name} doc {j}" for j in range(3)])
    fail = ["train/chunk1/example_train_1.jsonl.zst"]

    def hf_hub_download(repo_id, filename, repo_type=None):
        if filename in fail:
            raise requests.exceptions.ConnectionError("Connection reset by peer")
        return str(tmp_path / "hub" / filename)
    monkeypatch.setattr(P, "hub_error", lambda: None)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, repo_type=None: names)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        prepare(out, "--tokenizer=bytes")
    assert str(e.value) == (f"error: could not download {fail[0]} (ConnectionError); check the network, then rerun "
                            f"the same command to resume from the last commit")
    assert json.loads((out / "progress.json").read_text())["next"] == [2, 0]  # the two shards before it committed
    fail.clear()
    prepare(out, "--tokenizer=bytes")
    prepare(tmp_path / "fresh", "--tokenizer=bytes")
    assert [x.tobytes() for x in bins(out)] == [x.tobytes() for x in bins(tmp_path / "fresh")]


@pytest.mark.parametrize("offline", [False, True])
def test_an_unreachable_or_offline_hub_is_one_line_and_writes_nothing(tmp_path, offline):
    # huggingface_hub alone printed a line per retry for 25 s before its error; a bound port nobody listens on
    # refuses the connection at once, without a network
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "hf_hub_offline", "transformers_offline")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
        env.update(HF_ENDPOINT=endpoint, **({"HF_HUB_OFFLINE": "1"} if offline else {}))
        r = subprocess.run([sys.executable, "prepare_slimpajama.py", f"--out_dir={tmp_path / 'out'}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300, env=env)
    instead = "or give local files with --input"
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"error: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so the hub is not asked; unset it, "
                        f"{instead}\n" if offline else f"error: cannot reach the Hugging Face hub at {endpoint} "
                        f"(Connection refused); check the network (or HF_ENDPOINT), {instead}\n")
    assert os.listdir(tmp_path) == []


def test_the_same_command_on_a_finished_dataset_in_a_read_only_place_has_nothing_to_do(tmp_path, capsys,
                                                                                       monkeypatch):
    # a shared read-only mount (the tests may run as root, which no mode refuses: the mount's answers are faked):
    # the quickstart's prepare step, run again, was told to choose another --out_dir
    import checkpoint
    src, out = write_txt(tmp_path / "a.txt", "some text\n" * 50), tmp_path / "data"
    meta = prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0.1")
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: access(p, mode) and not (mode & os.W_OK and p == str(out)))
    monkeypatch.setattr(checkpoint, "unwritable", lambda folder: "Read-only file system")
    capsys.readouterr()
    assert prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0.1") == meta
    assert capsys.readouterr().out == f"{out / 'meta.json'} already holds this dataset; nothing to do\n"
    with pytest.raises(SystemExit, match="other settings"):  # another dataset is still refused as before
        prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0.2")


def test_a_folder_holding_the_text_it_was_prepared_from_is_not_told_to_be_deleted(tmp_path, monkeypatch):
    # nanoGPT's layout, data/x/input.txt prepared into data/x: after an edit of the text, "delete data/x to start
    # over from the new ones" removed the new text with the old bins; train.py's refusals said the same
    import checkpoint
    out = tmp_path / "x"
    out.mkdir()
    src = write_txt(out / "input.txt", "some text\n" * 50)
    prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0.1")
    with open(src, "a") as f:
        f.write("more\n")
    with pytest.raises(SystemExit) as e:
        prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0.1")
    files = f"{out}/train.bin, {out}/val.bin and {out}/meta.json (not {out}: it holds input.txt too)"
    assert str(e.value).endswith(f"or delete {files} to start over from the new ones")
    os.remove(out / "val.bin")
    with pytest.raises(SystemExit) as e:
        checkpoint.open_data(str(out), 8, 256)
    assert f"delete {out}/train.bin and {out}/meta.json (not {out}: it holds input.txt too) and prepare" in str(e.value)
    for name in ("train.bin", "meta.json"):  # the advice followed: the same command makes it from the new text
        os.remove(out / name)
    assert prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0.1")["train_tokens"] > 0
    assert (out / "input.txt").read_text().endswith("more\n")


def test_never_overwrites_other_data(tmp_path, capsys, monkeypatch):
    src = write_jsonl(tmp_path / "a.jsonl", DOCS)
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.bin").write_bytes(b"precious")
    with pytest.raises(SystemExit) as e:
        prepare(out, "--tokenizer=bytes", "--input", src)
    assert "not overwriting" in str(e.value) and (out / "train.bin").read_bytes() == b"precious"
    # a run cut short whose progress.json was deleted: "delete it" of train.bin, followed, met val.bin's refusal
    (out / "val.bin").write_bytes(b"precious")
    with pytest.raises(SystemExit) as e:
        prepare(out, "--tokenizer=bytes", "--input", src)
    assert str(e.value) == (f"error: {out}/train.bin and val.bin exist without progress.json or meta.json; not "
                            f"overwriting them: use another --out_dir or delete {out}")

    done = tmp_path / "done"  # 6 documents: all of them train (the default --val_fraction of 0.01 splits off none)
    meta = prepare(done, "--tokenizer=bytes", "--input", src, "--val_fraction=0")
    before = [x.tobytes() for x in bins(done)]
    with pytest.raises(SystemExit) as e:
        prepare(done, "--tokenizer=r50k_base", "--input", src, "--val_fraction=0")
    assert "tokenizer: 'bytes', not 'r50k_base'" in str(e.value)
    assert prepare(done, "--tokenizer=bytes", "--input", src, "--val_fraction=0") == meta  # same again: nothing to do
    assert [x.tobytes() for x in bins(done)] == before

    with pytest.raises(SystemExit) as e:
        P.main(["--input", str(tmp_path / "missing.jsonl")])
    assert "missing.jsonl does not exist" in str(e.value)
    # an input in a folder this user cannot search (refused by hand: the tests may run as root) was "does not exist"
    shut, stat = tmp_path / "shut" / "doc.txt", os.stat

    def guarded_stat(path, *args, **kwargs):
        if os.fspath(path) == str(shut):
            raise PermissionError(13, "Permission denied", str(path))
        return stat(path, *args, **kwargs)
    monkeypatch.setattr(os, "stat", guarded_stat)
    with pytest.raises(SystemExit) as e:
        P.main(["--input", str(shut)])
    monkeypatch.undo()
    assert str(e.value) == f"error: cannot read {shut} (Permission denied); make it readable for this user, or " \
                           f"leave it out"
    with pytest.raises(SystemExit):
        P.main(["--input", src, "--val_input", src, "--val_fraction=0.1"])
    assert "--val_fraction splits --input alone" in capsys.readouterr().err


def test_a_folder_input_takes_its_files_as_a_glob_does(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_txt(folder / "a.txt", "hello\n")
    (folder / "gone.txt").symlink_to(tmp_path / "nowhere.txt")  # a broken link: was a FileNotFoundError traceback
    for i, spec in enumerate([folder, folder / "*.txt"]):
        meta = prepare(tmp_path / f"out{i}", "--tokenizer=bytes", "--input", str(spec), "--val_fraction=0")
        assert meta["train_shards"] == [str(folder / "a.txt")] and meta["train_tokens"] == 7


def test_a_folder_input_goes_through_its_linked_subfolders_as_a_glob_does(tmp_path):
    # os.walk left a linked subfolder out without a word, where 'in/**/*.txt' read it; a link back up is no loop
    (tmp_path / "elsewhere").mkdir()
    write_txt(tmp_path / "elsewhere" / "b.txt", "world\n")
    folder = tmp_path / "in"
    folder.mkdir()
    write_txt(folder / "a.txt", "hello\n")
    (folder / "linked").symlink_to(tmp_path / "elsewhere")
    (folder / "up").symlink_to(folder)
    for i, spec in enumerate([folder, folder / "**" / "*.txt"]):
        meta = prepare(tmp_path / f"out{i}", "--tokenizer=bytes", "--input", str(spec), "--val_fraction=0")
        assert meta["train_shards"] == [str(folder / "a.txt"), str(tmp_path / "elsewhere" / "b.txt")]


def test_a_glob_that_matches_a_folder_reads_it_as_the_shell_passes_it(tmp_path):
    # "in/*" quoted read in/a.txt and left in/sub/ out without a word (exit 0), where in/* unquoted read both; a glob
    # of folders alone was told it "holds no file"
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_txt(folder / "a.txt", "hello\n")
    write_txt(folder / "sub" / "b.txt", "world\n")
    both = [str(folder / "a.txt"), str(folder / "sub" / "b.txt")]
    for i, spec in enumerate([folder / "*", tmp_path / "i*", folder / "**"]):
        meta = prepare(tmp_path / f"out{i}", "--tokenizer=bytes", "--input", str(spec), "--val_fraction=0")
        assert meta["train_shards"] == both and meta["train_tokens"] == 14
    meta = prepare(tmp_path / "out3", "--tokenizer=bytes", "--input", str(folder / "s*"), "--val_fraction=0")
    assert meta["train_shards"] == both[1:]


def test_an_input_file_whose_name_reads_as_a_glob_is_that_file(tmp_path):
    # data[1].txt as a glob is data1.txt: refused as "holds no file", or data1.txt read in its place with exit 0
    src = write_txt(tmp_path / "data[1].txt", "hello\n")
    meta = prepare(tmp_path / "out", "--tokenizer=bytes", "--input", src, "--val_fraction=0")
    assert meta["train_shards"] == [src]
    write_txt(tmp_path / "data1.txt", "another file\n")
    meta = prepare(tmp_path / "out2", "--tokenizer=bytes", "--input", src, "--val_fraction=0")
    assert meta["train_shards"] == [src] and meta["train_tokens"] == 7

def test_a_glob_in_a_folder_whose_name_has_a_bracket_says_how_to_escape_it(tmp_path):
    # 'g[1]/*.txt' looks in g1/: "holds no file" of a folder holding one, without a word on why
    (tmp_path / "g[1]").mkdir()
    src = write_txt(tmp_path / "g[1]" / "a.txt", "hello\n")
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "out", "--tokenizer=bytes", "--input", str(tmp_path / "g[1]" / "*.txt"))
    assert str(e.value).endswith("; in a glob [...] matches one of its characters, so write [[] for a literal [")
    meta = prepare(tmp_path / "out", "--tokenizer=bytes", "--input", str(tmp_path / "g[[]1]" / "*.txt"),
                   "--val_fraction=0")
    assert meta["train_shards"] == [src]


def test_an_unquoted_glob_after_input_equals_says_how_to_give_several_files(capsys):
    # `--input=data/*.txt` expands to `--input=data/a.txt data/b.txt`: argparse said only "unrecognized arguments"
    for argv, name in ((["--input=a.txt", "b.txt", "c.txt"], "--input"),
                       (["--input", "a.txt", "--val_input=v.txt", "w.txt"], "--val_input")):
        with pytest.raises(SystemExit):
            P.parse_args(argv)
        assert capsys.readouterr().err.splitlines()[-1].endswith(
            f"; {name}=VALUE takes one value: to give several, write {name} A B (a space, no '=')")
    with pytest.raises(SystemExit):  # a stray option is not a second value
        P.parse_args(["--input=a.txt", "--bogus"])
    assert capsys.readouterr().err.splitlines()[-1].endswith("error: unrecognized arguments: --bogus")


def test_input_given_twice_is_refused_not_the_first_dropped(capsys):
    # argparse keeps the last --input's values: `--input a.txt --input b.txt` prepared b.txt alone, exit 0
    for argv, name in ((["--input", "a.txt", "--input", "b.txt"], "--input"),
                       (["--input=a.txt", "--inp", "b.txt"], "--input"),
                       (["--input", "a.txt", "--val_input", "v.txt", "--val_input=w.txt"], "--val_input")):
        with pytest.raises(SystemExit):
            P.parse_args(argv)
        assert capsys.readouterr().err.splitlines()[-1].endswith(
            f"error: {name} is given twice, and the second replaces the first (its values "
            f"would be dropped); give all of them after one {name}: {name} A B C")
    assert P.parse_args(["--input", "a.txt", "b.txt", "--val_input", "v.txt"]).input == ["a.txt", "b.txt"]

def test_a_file_reached_through_a_link_is_the_same_file(tmp_path):
    src = write_txt(tmp_path / "a.txt", "hello\nworld\n")
    (tmp_path / "alias.txt").symlink_to(src)
    # as validation and training input: val.bin was train.bin, validation on the training text, exit 0
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "out", "--tokenizer=bytes", "--input", str(tmp_path / "alias.txt"), "--val_input", src)
    assert str(e.value) == f"error: {src} is in both --input and --val_input; give it to one of them"
    # twice as training input: its text was written twice
    meta = prepare(tmp_path / "out2", "--tokenizer=bytes", "--input", str(tmp_path / "alias.txt"), src,
                   "--val_fraction=0")
    assert meta["train_shards"] == [src] and meta["train_tokens"] == 13


def test_a_hard_link_is_the_same_file(tmp_path):
    # a hard link has a real path of its own: it was read twice, and as --val_input val.bin held the training text
    src = write_txt(tmp_path / "a.txt", "hello\nworld\n")
    os.link(src, tmp_path / "hard.txt")
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "out", "--tokenizer=bytes", "--input", src, "--val_input", str(tmp_path / "hard.txt"))
    assert str(e.value) == f"error: {src} is in both --input and --val_input; give it to one of them"
    meta = prepare(tmp_path / "out2", "--tokenizer=bytes", "--input", src, str(tmp_path / "hard.txt"),
                   "--val_fraction=0")
    assert meta["train_shards"] == [src] and meta["train_tokens"] == 13


def test_a_kill_while_writing_progress_or_meta_leaves_nothing_behind_after_the_rerun(tmp_path):
    # a SIGKILL inside write_json left progress.json.XXXX.tmp in the data folder for good, and one between writing
    # meta.json and removing progress.json left progress.json beside the finished dataset
    src = write_txt(tmp_path / "a.txt", "hello\nworld\n")
    out = tmp_path / "out"
    meta = prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0")
    (out / "progress.json").write_text("{}")
    (out / "meta.json.k2j_x9ab.tmp").write_text("{")
    (out / "meta.json.bak.tmp").write_text("{")  # the user's own, of no write's name: kept
    (out / "progress.json.a1b2c3d4.tmp").write_text("{")
    (out / "progress.json.tmp").write_text("{")  # the one name this script wrote through before 46d06a2
    (out / "meta.json.tmp").write_text("{")
    assert prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0") == meta
    assert sorted(os.listdir(out)) == ["meta.json", "meta.json.bak.tmp", "train.bin", "val.bin"]
    (out / "meta.json.bak.tmp").unlink()
    (out / "meta.json.tmp").mkdir()  # a folder of that name is no kill's: an IsADirectoryError traceback, then
    assert prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0") == meta
    assert sorted(os.listdir(out)) == ["meta.json", "meta.json.tmp", "train.bin", "val.bin"]


def test_a_closed_output_pipe_is_not_called_a_failed_write(tmp_path, monkeypatch):
    # `prepare_slimpajama.py | head`: the progress line's BrokenPipeError was "writing OUT failed (Broken pipe); free
    # space or fix the folder"; it goes on to configurator.cli, which says the reader went away
    monkeypatch.setattr(P, "PRINT_SECONDS", 0)
    src = write_txt(tmp_path / "a.txt", "hello\n")

    def closed(line):
        raise BrokenPipeError(32, "Broken pipe")
    args = P.parse_args(["--input", src, f"--out_dir={tmp_path / 'out'}", "--tokenizer=bytes", "--commit_seconds=0"])
    with pytest.raises(BrokenPipeError):
        P.prepare(args, log=closed)


def test_a_second_run_into_the_same_out_dir_waits_its_turn(tmp_path):
    # two runs appending to one folder's bins interleaved their tokens; a killed run leaves no lock behind
    src = write_jsonl(tmp_path / "a.jsonl", DOCS)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
                               "os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print(flush=True); time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE)
    try:
        holder.stdout.readline()  # the lock is held
        with pytest.raises(SystemExit) as e:
            prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0")
        assert str(e.value) == f"error: {out} is being written by another prepare_slimpajama.py run; wait for it " \
                               f"to end or use another --out_dir"
        assert os.listdir(out) == []
    finally:
        holder.kill()
        holder.wait()
    assert prepare(out, "--tokenizer=bytes", "--input", src, "--val_fraction=0")["train_documents"] == len(DOCS)


def test_no_validation_tokens_beside_a_held_out_fraction_or_a_validation_input_is_refused(tmp_path, capsys):
    # --val_tokens=0 with the default --val_fraction 0.01 held out the text's last 1% and dropped it: train.bin
    # missed it, with exit 0 (the seventeenth pass); --val_input was read for nothing
    src = tmp_path / "in.txt"
    write_txt(src, "hello world\n" * 200)
    for extra, said in ([], "--val_fraction 0.01 would hold out documents only to drop them; for no validation "
                            "split, set --val_fraction=0"),  \
                       (["--val_input", str(src)], "--val_input would be read for nothing; drop it"):
        with pytest.raises(SystemExit) as e:
            P.main(["--input", str(src), "--tokenizer=bytes", "--val_tokens=0", f"--out_dir={tmp_path / 'out'}",
                    *extra])
        assert e.value.code == 2
        assert capsys.readouterr().err.endswith(f"error: --val_tokens=0 keeps no validation tokens, so {said}\n")
        assert not (tmp_path / "out").exists()
    meta = prepare(tmp_path / "none", "--tokenizer=bytes", "--input", str(src), "--val_fraction=0", "--val_tokens=0")
    assert meta["train_tokens"] == 2401 and meta["val_tokens"] == 0  # every byte in train.bin, as asked


def test_the_benchmark_measures_a_text_too_small_for_a_validation_split(tmp_path, capsys, monkeypatch):
    # a text of fewer documents than 1/val_fraction was refused as a dataset ("no text for val.bin ... give
    # validation files with --val_input"), which the benchmark writes only to time it (the seventeenth pass)
    src = tmp_path / "small.txt"
    write_txt(src, "hello world\n" * 20)
    monkeypatch.chdir(tmp_path)
    P.main(["--input", str(src), "--tokenizer=bytes", "--benchmark"])
    said = capsys.readouterr().out
    assert said.startswith("1 documents, 0.0 M characters") and "end to end" in said, said
    assert sorted(os.listdir(tmp_path)) == ["small.txt"]  # nothing prepared, not even the default out_dir


def test_the_benchmark_counts_a_text_file_as_the_one_document_it_times(tmp_path, capsys, monkeypatch):
    # the reference cut a .txt file at --val_fraction's default 0.01 (the timed run keeps it whole): "2 documents"
    src = tmp_path / "big.txt"
    write_txt(src, "hello world\n" * 2000)
    monkeypatch.chdir(tmp_path)
    P.main(["--input", str(src), "--tokenizer=bytes", "--benchmark"])
    assert capsys.readouterr().out.startswith("1 documents, 0.0 M characters")


def test_the_benchmark_times_every_document_past_the_token_limits(tmp_path, capsys, monkeypatch):
    # the timed run stopped at --train_tokens (--val_tokens of a --val_input, whose default 10M a local copy of
    # SlimPajama's validation split passes) while the reference encoded every document: "0.00x" (the 23rd pass)
    write_jsonl(tmp_path / "a.jsonl", ["hello world"] * 200)
    write_jsonl(tmp_path / "b.jsonl", ["goodbye"] * 200)
    args = P.parse_args(["--input", str(tmp_path / "a.jsonl"), "--val_input", str(tmp_path / "b.jsonl"),
                         "--tokenizer=bytes", "--benchmark"])
    args.train_tokens = args.val_tokens = 5  # limits the text passes, as a default limit would be
    made, prepare = [], P.prepare
    monkeypatch.setattr(P, "prepare", lambda a, log: made.append(prepare(a, log)) or made[-1])
    P.benchmark(args, repeats=1)
    assert (made[0]["train_tokens"], made[0]["val_tokens"]) == (2400, 1600)  # every byte and its separator
    assert capsys.readouterr().out.startswith("400 documents")


def test_the_benchmark_on_a_bad_line_names_no_folder_to_delete(tmp_path, monkeypatch):
    # it said "fix it and delete /tmp/tmpXXXX to start over": the benchmark's own temporary folder, gone already
    (tmp_path / "a.jsonl").write_text('{"text": "hello"}\nnot json\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        P.main(["--input", str(tmp_path / "a.jsonl"), "--tokenizer=bytes", "--benchmark"])
    said = str(e.value.code)
    assert "a.jsonl:2" in said and "; fix it, or rerun the same command with --skip_bad" in said, said
    assert "delete" not in said and sorted(os.listdir(tmp_path)) == ["a.jsonl"]


def test_an_eta_past_a_day_counts_its_hours():
    # strftime("%H:%M:%S", gmtime(...)) wrapped at 24 hours: 30 hours of SlimPajama left read "ETA 06:00:00"
    st = {"next": [0, 0], "tokens": {"train": 0, "val": 0}, "documents": {"train": 0, "val": 0}}
    line = P.progress(st, [("a", "train"), ("b", "val")], {"train": 30 * 3600, "val": 0}, 1, 1, 1.0)
    assert line.endswith("ETA 30:00:00")
    assert P.clock(59.9) == "00:00:59" and P.clock(3661) == "01:01:01"
    # the user's own files may end long before the token target: a 20 s file read "ETA 11:41:54"
    line = P.progress(st, [("a", "train"), ("b", "val")], {"train": 30 * 3600, "val": 0}, 1, 1, 1.0, local=True)
    assert line.endswith("ETA 30:00:00 to the token target, sooner if the input ends first")


def test_several_inputs_given_as_one_name_are_told_to_be_given_apart(tmp_path):
    # "a.txt,b.txt", or "a.txt b.txt" quoted as one: "does not exist; give existing files", of two files that are
    for name in ("a.txt", "b.txt"):
        write_txt(tmp_path / name, "To be, or not to be, that is the question.\n" * 40)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    for given in (f"{a},{b}", f"{a} {b}"):
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "d", "--tokenizer=bytes", "--input", given)
        assert str(e.value) == f"error: --input {given} does not exist; each of {a}, {b} does: give them apart, " \
                               f"--input {a} {b}"

    # one name with a space or comma after it ("a.txt " quoted): the same "give existing files", the space unseen
    for given in (f"{a} ", f"{a},"):
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "d", "--tokenizer=bytes", "--input", given)
        assert str(e.value) == f"error: --input {given} does not exist; {a} does: the name has a space or comma " \
                               f"before or after it; give --input {a}"

def test_a_jsonl_holding_one_json_array_is_told_to_be_split_into_lines(tmp_path):
    # json.dump(docs) saved as docs.jsonl: "not a JSON object with a 'text' string (TypeError('list indices must be
    # integers...'))", pretty-printed or not, and --skip_bad skipped its one line into "no text"
    docs = [{"text": f"document {i} " + "x" * 40} for i in range(40)]
    for name, text in (("one.jsonl", json.dumps(docs)), ("pretty.jsonl", json.dumps(docs, indent=2))):
        write_txt(tmp_path / name, text)
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "d", "--tokenizer=bytes", "--input", str(tmp_path / name))
        lines = tmp_path / name.replace(".jsonl", "_lines.jsonl")
        assert str(e.value).startswith(f"error: {tmp_path / name}:1: the file is one JSON array, not one object a "
                                       f"line; split it into lines, e.g. jq -c '.[]' {tmp_path / name} > {lines}, and "
                                       f"give {lines} in its place (out of a folder or glob given as input, move "
                                       f"{tmp_path / name} away); ")
        shutil.rmtree(tmp_path / "d")
        write_txt(lines, "".join(json.dumps(d) + "\n" for d in docs))  # what jq writes
        assert prepare(tmp_path / "d", "--tokenizer=bytes", "--val_fraction=0.1", "--input", str(lines))[
            "train_documents"] == 36
        shutil.rmtree(tmp_path / "d")
        os.remove(lines)
    # in a folder, split beside it as advised: the array, still there, was the same error again, and a new name
    # (_lines_2) for a second copy; it is told to move the array away, after which the folder prepares
    folder = tmp_path / "in"
    folder.mkdir()
    write_txt(folder / "docs.jsonl", json.dumps(docs))
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d", "--tokenizer=bytes", "--input", str(folder))
    assert f"> {folder / 'docs_lines.jsonl'}, and give {folder / 'docs_lines.jsonl'} in its place (out of a folder " \
           f"or glob given as input, move {folder / 'docs.jsonl'} away)" in str(e.value)
    shutil.rmtree(tmp_path / "d")
    write_txt(folder / "docs_lines.jsonl", "".join(json.dumps(d) + "\n" for d in docs))
    os.rename(folder / "docs.jsonl", tmp_path / "docs.jsonl")
    assert prepare(tmp_path / "d", "--tokenizer=bytes", "--val_fraction=0.1", "--input", str(folder))[
        "train_documents"] == 36


def test_a_txt_of_json_documents_is_told_to_be_renamed_jsonl(tmp_path):
    # a .jsonl saved or renamed as .txt was prepared as one document of JSON syntax ({"text": ..., escapes), exit 0,
    # where eval.py --text refuses the same file; --skip_bad, which skips bad input, skipped nothing either
    docs = [{"text": f"document {i} " + "x" * 40} for i in range(40)]
    t = write_txt(tmp_path / "docs.txt", "".join(json.dumps(d) + "\n" for d in docs))
    for extra in ((), ("--skip_bad",)):
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "d", "--tokenizer=bytes", "--val_fraction=0.1", "--input", t, *extra)
        assert str(e.value) == (f"error: {t}: its lines are JSON documents ({{\"text\": ...}}), as a .jsonl holds "
                                f"them, and a .txt is read as one plain text, JSON syntax and all; rename it to "
                                f".jsonl, e.g. mv {t} {tmp_path / 'docs.jsonl'}")
        assert not os.path.exists(tmp_path / "d")  # refused before out_dir begins
    os.rename(t, tmp_path / "docs.jsonl")  # as advised
    assert prepare(tmp_path / "d", "--tokenizer=bytes", "--val_fraction=0.1", "--input", str(tmp_path / "docs.jsonl"))[
        "train_documents"] == 36
    # text that begins with a brace is text
    b = write_txt(tmp_path / "brace.txt", "{not JSON}\nline two\n")
    assert prepare(tmp_path / "b", "--tokenizer=bytes", "--val_fraction=0.5", "--input", b)["train_documents"] == 1


def test_a_compressed_file_under_a_text_name_is_told_to_be_decompressed(tmp_path):
    # a gzip file named .txt was "not UTF-8 (invalid start byte)" once out_dir held empty bins, its cause unsaid;
    # a zstd .jsonl (the .zst left off its name) is read as it is once renamed
    text = "line of text\n" * 200
    g = tmp_path / "g.txt"
    g.write_bytes(gzip.compress(text.encode()))
    z = tmp_path / "z.jsonl"
    z.write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "one"}\n{"text": "two"}\n'))
    for path, fix in ((g, f"gzip-compressed; decompress it first, e.g. gunzip -c {g} > {tmp_path / 'g_2.txt'}, and "
                          f"give {tmp_path / 'g_2.txt'} in its place"),
                      (z, f"zstd-compressed; rename it, e.g. mv {z} {tmp_path / 'z.jsonl.zst'}")):
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / "d", "--tokenizer=bytes", "--val_fraction=0.5", "--input", str(path), "--skip_bad")
        assert str(e.value).startswith(f"error: {path} is {fix}")
        assert not os.path.exists(tmp_path / "d")  # refused before out_dir begins
    (tmp_path / "g_2.txt").write_text(text)  # as advised
    assert prepare(tmp_path / "d", "--tokenizer=bytes", "--val_fraction=0.5", "--input", str(tmp_path / "g_2.txt"))[
        "train_tokens"] > 0
    os.rename(z, tmp_path / "z.jsonl.zst")
    assert prepare(tmp_path / "e", "--tokenizer=bytes", "--val_fraction=0.5", "--input", str(tmp_path / "z.jsonl.zst"))[
        "train_documents"] == 1


def test_a_token_target_a_txt_file_runs_far_past_is_named(tmp_path, capsys):
    # one .txt is one document: --train_tokens=100 on 2,000 bytes wrote them all, exit 0, without a word
    t = write_txt(tmp_path / "t.txt", "line of text\n" * 154)
    meta = prepare(tmp_path / "out", "--tokenizer=bytes", "--input", t, "--val_fraction=0.1", "--train_tokens=100")
    assert meta["train_tokens"] > 1000
    out = capsys.readouterr().out
    assert f"note: train.bin holds {meta['train_tokens']:,} tokens, past --train_tokens=100" in out
    assert "val.bin holds" not in out  # the default 10M validation target is not past


def test_a_jsonl_beside_its_zstd_copy_is_refused_not_read_twice(tmp_path):
    # `zstd docs.jsonl` keeps docs.jsonl: the folder was prepared with every document twice, exit 0
    os.makedirs(tmp_path / "in")
    plain = write_jsonl(tmp_path / "in" / "docs.jsonl", DOCS)
    write_jsonl(tmp_path / "in" / "docs.jsonl.zst", DOCS)
    for args in (["--input", str(tmp_path / "in")], ["--input", plain, "--val_input", plain + ".zst"]):
        with pytest.raises(SystemExit, match="are one file and its zstd copy") as e:
            P.main([f"--out_dir={tmp_path / 'out'}", "--tokenizer=bytes", *args])
        assert plain in str(e.value) and not os.path.exists(tmp_path / "out")
