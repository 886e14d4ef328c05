"""Column sharding over ``torch.distributed``: the halo plan, the sharded model, checkpoints.

A layer above :mod:`cortexgnn.nn` (whose layers it reuses) and below
:mod:`cortexgnn.train` (which launches it); it never imports the application.
"""
