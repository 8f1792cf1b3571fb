"""Stand-ins for the providers over real HTTP, for tests, benches and `manage.py simulate`.

They live outside the product package and import nothing from it: a simulator plays the provider,
so it keeps its own copy of the provider's facts (reference/17track.md, reference/awb.md). Sharing
the service's code (its signature, its error codes) would let a bug there go unnoticed.
"""
