"""Identity benchmarks: password hashing (``passwords``) and the HTTP flows (``http``)."""
