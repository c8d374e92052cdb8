"""The diffusion RGB-D prior: training, refinement of raw depth, and the score for the NeRF regulariser."""
