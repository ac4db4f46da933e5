"""Experiment drivers: `run(config, workdir)` turns a trained method into tables and figures.

Each module is named by a config's ``experiment`` field and run through
``python launch.py --config=configs/<name>.py --workdir=DIR``.
"""
