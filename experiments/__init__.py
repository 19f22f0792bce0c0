# The studies import the repository's own modules (model, configurator, checkpoint, ...) by their plain names, and
# `python -m experiments.NAME` puts the current folder first on sys.path: run from another project's folder (a
# nanoGPT checkout, with this repository on PYTHONPATH as experiments/README.md says) its configurator.py and
# model.py were imported instead, an ImportError traceback or another model. The repository comes first.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)
