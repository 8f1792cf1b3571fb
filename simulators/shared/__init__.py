"""Server plumbing both simulators use: the threaded server, the delivery queue, faults."""
