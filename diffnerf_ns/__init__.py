"""diffnerf-ns: DiffusioNeRF-style RGB-D NeRF for NYU Depth V2, as a nerfstudio plugin."""

from diffnerf_ns.compat import allow_numpy_scalars_in_checkpoints

# Every ns-* command imports the plugin (entry points, or the saved config's class paths),
# so this is where checkpoints become loadable under torch >= 2.6.
allow_numpy_scalars_in_checkpoints()
