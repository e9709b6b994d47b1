import base64

import pytest

from tools.stack.kafka import new_cluster_id

pytestmark = pytest.mark.unit


def test_cluster_ids_are_16_bytes_and_never_look_like_an_option():
    ids = [new_cluster_id() for _ in range(2000)]  # about 31 draws in 2000 start with "-"
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
