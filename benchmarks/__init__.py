"""The benchmark tool: ``python -m benchmarks list | run NAME | run all | render``.

The experiments are registered in :mod:`benchmarks.registry`, the renderers in
:mod:`benchmarks.renderers`; results go to ``benchmarks/results/``.
"""
