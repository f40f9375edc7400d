"""The matrices that hold the analytic estimator to exact-mode traces of transformers (repository only).

- :mod:`matrix.cut`: every causal-LM type's default config cut to a few layers, every layer kind kept;
- :mod:`matrix.repairs`: the recorded repairs of default configs transformers cannot build or run, each sourced;
- :mod:`matrix.compare`: the coverage matrix (128-token workloads): the traced data against the analytic side;
- :mod:`matrix.render`: docs/coverage.md;
- :mod:`matrix.cases`: the accuracy matrix (small configs of real families, itemized within 5 %);
- :mod:`matrix.long_context`: the long-context matrix (batch 4 x 2048 inference, batch 2 x 2048 training).

Scripts in ``benchmarks/`` import it as ``matrix`` (their directory is on ``sys.path``); the test suite through
pytest's ``pythonpath``.
"""
