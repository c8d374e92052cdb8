"""One reader per RGB-D capture layout; each parses its files into a `data_converters.capture.Capture`."""
