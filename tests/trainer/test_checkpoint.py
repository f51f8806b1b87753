import numpy as np

from nndl.trainer import checkpoint


def test_round_trip_keeps_arrays_and_values() -> None:
    tree = {"epoch": 3, "eta": 0.5, "history": [{"a": 1.0}],
            "params": [{"w": np.arange(6, dtype=np.float32).reshape(2, 3)}], "best": None}
    back = checkpoint.loads(checkpoint.dumps(tree))
    assert back["epoch"] == 3 and back["history"] == [{"a": 1.0}] and back["best"] is None
    np.testing.assert_array_equal(back["params"][0]["w"], tree["params"][0]["w"])
