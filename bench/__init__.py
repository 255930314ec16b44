"""yieldio benchmark suite: see bench/README.md. Entry point: bench.runner.main."""
