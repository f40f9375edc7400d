"""``python -m hf_gpu_estimator`` runs the CLI."""

from hf_gpu_estimator.cli import main

raise SystemExit(main())
