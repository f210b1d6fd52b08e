"""The descriptor pool that holds seedlock's generated protocol messages.

seedlock's ``inference`` package reuses the public KServe v2 message names
(``inference.ModelInferRequest`` ...). ``tritonclient`` registers the same names
in protobuf's default pool from its own, larger file, and a pool refuses a
second definition of a symbol. Keeping seedlock's files in a pool of their own
lets both live in one process (a test, or an application that uses both
clients); on the wire only names and field numbers matter.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor

POOL = descriptor_pool.DescriptorPool()


def include(file: FileDescriptor) -> None:
    """Add another library's file (e.g. ``grpc.health.v1``) to :data:`POOL`,
    so server reflection can describe it; a no-op when it is already there."""
    try:
        POOL.FindFileByName(file.name)
        return
    except KeyError:
        pass
    for dep in file.dependencies:
        include(dep)
    POOL.AddSerializedFile(file.serialized_pb)
