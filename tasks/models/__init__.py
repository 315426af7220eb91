"""The tasks' networks: small ones for the embedded tasks (`small`), the paper's (`paper`), detectors."""
