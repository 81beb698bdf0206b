"""The platforms' side of the tests, one module per platform: payloads in the documented shapes,
signed and delivered the way the platform does it (`deliver` posts, then runs the worker once, see
`tests.helpers.work`), and the CLI helpers that read the books back for that platform's test shop."""
