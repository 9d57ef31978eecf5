"""The path of a study after receive: assemble, queue, infer, encode, deliver."""
