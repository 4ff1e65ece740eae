"""One module per command group; `hub.cli` registers every module found here."""
