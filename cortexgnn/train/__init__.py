"""The training library: config, data, loop, evaluation, metrics, run folders, models.

The command line over it is :mod:`cortexgnn.cli`.
"""
