"""Code the tests share: a loopback HTTP server, small paper-task options, a plugin package writer, small cells, a UI process."""
