"""The application: training, evaluation, checkpoints of runs, metrics and the command line."""
