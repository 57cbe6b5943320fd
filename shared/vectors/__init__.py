"""Vector math for Hartonomous: wire formats, SQL scalar logic, SIMD kernels, search, pooling.

* ``errors`` -- the error types every module raises (code, field, message).
* ``scalar`` -- the SQL vector functions in pure Python over float32 bytes (the reference).
* ``sql_functions`` -- ``register(conn)`` puts the scalar set on a SQLite connection.
* ``kernels`` -- the same functions vectorised with numpy/BLAS, batch-first.
* ``pool`` -- a bounded, thread-safe buffer pool for the hot paths.
* ``codec`` -- JSON / base64 wire formats to float32 arrays, with 400-ready errors.
* ``search`` -- exact top-k search (cosine, euclidean, dot) over a float32 matrix.

Submodules are imported on demand so that importing the package stays cheap, and the
package imports none of them: a package that imports its own modules can deadlock when
two threads of a cold instance import it and one of those modules at once.
"""
