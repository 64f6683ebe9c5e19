"""The benchmarks, run from the repository root as modules (`python -m benchmarks.throughput.tile ...`):
`throughput` measures the pipeline's speed and memory against baselines of the same run, `science` analyses
what the synthetic world and the learned features hold. README.md lists them; RESULTS.md has the figures."""
