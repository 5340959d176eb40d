"""The pipeline's steps, one module each. Every module is a plain function
(build context, parameters, upstream steps) -> a SageMaker SDK step object: no I/O, no AWS call."""
