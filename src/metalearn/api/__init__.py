"""The HTTP API over the run registry (`metalearn serve`)."""
