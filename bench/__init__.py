"""proxyd's benchmark suite: fakes, the bare relay yardstick, scenarios and the runner (`python -m bench.run`)."""
