"""NYU Depth V2 raw Kinect captures and the labeled .mat file into posed nerfstudio RGB-D scenes."""
