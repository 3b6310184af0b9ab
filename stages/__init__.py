"""DVC stage entry points: thin command-line wrappers around `src`."""
