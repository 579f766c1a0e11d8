"""GPU partitioning for the autostarted vLLM server: which GPUs serve, which train,
and which launches would put a training process on a reserved GPU."""

from __future__ import annotations

import pytest

from axolotl_grpo_plugin.config.gpus import (
    GpuLayoutError,
    check_launch,
    launcher_args,
    split_gpus,
    train_command,
    visible_gpus,
)


def ids(n: int) -> list[str]:
    return [str(i) for i in range(n)]


@pytest.mark.parametrize("n", [2, 4, 8])
def test_default_reserves_the_last_gpu_and_trains_on_the_rest(n):
    layout = split_gpus(ids(n), None, server_gpus=1)
    assert layout.server == (str(n - 1),)
    assert layout.trainer == tuple(ids(n - 1))
    assert layout.server_env == str(n - 1)
    assert set(layout.server).isdisjoint(layout.trainer)


@pytest.mark.parametrize("n, tp", [(4, 2), (8, 2), (8, 4)])
def test_tensor_parallel_server_reserves_that_many_last_gpus(n, tp):
    layout = split_gpus(ids(n), None, server_gpus=tp)
    assert layout.server == tuple(ids(n)[-tp:])
    assert layout.server_env == ",".join(ids(n)[-tp:])
    assert len(layout.trainer) == n - tp


@pytest.mark.parametrize("n, reserved", [(2, [0]), (4, [1]), (8, [0, 7])])
def test_explicit_reservation(n, reserved):
    layout = split_gpus(ids(n), reserved, server_gpus=len(reserved))
    assert layout.server == tuple(map(str, reserved))
    assert layout.trainer == tuple(g for g in ids(n) if int(g) not in reserved)


@pytest.mark.parametrize("n, server_gpus", [(0, 1), (1, 1), (2, 2), (4, 4)])
def test_too_few_gpus_names_the_count_and_the_colocate_fix(n, server_gpus):
    with pytest.raises(GpuLayoutError) as info:
        split_gpus(ids(n), None, server_gpus=server_gpus)
    assert f"needs {server_gpus + 1} GPUs" in info.value.message
    assert f"sees {n}" in info.value.message
    assert "colocate" in info.value.fix


def test_reserving_every_gpu_leaves_none_for_training():
    with pytest.raises(GpuLayoutError, match="no GPU is left"):
        split_gpus(ids(1), [0], server_gpus=1)


def test_reservation_must_match_the_server_size():
    with pytest.raises(GpuLayoutError) as info:
        split_gpus(ids(4), [2, 3], server_gpus=1)
    assert "tensor_parallel_size" in info.value.message
    with pytest.raises(GpuLayoutError, match="once"):
        split_gpus(ids(4), [3, 3], server_gpus=2)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_accelerate_default_launch_is_rejected_with_the_exact_command(n):
    """No accelerate config: one process per visible GPU, so the last rank lands on vLLM's GPU."""
    layout = split_gpus(ids(n), None)
    with pytest.raises(GpuLayoutError) as info:
        check_launch(layout, ids(n), local_processes=n, config="configs/gsm8k.yaml")
    assert f"LOCAL_RANK {n - 1} on GPU {n - 1}" in info.value.message
    assert f"axolotl train configs/gsm8k.yaml -- --num_processes {n - 1}" in info.value.fix
    assert "--gpu_ids" not in info.value.fix  # the free GPUs are the first ones


@pytest.mark.parametrize("n", [2, 4, 8])
def test_one_process_per_free_gpu_is_accepted(n):
    layout = split_gpus(ids(n), None)
    check_launch(layout, ids(n), local_processes=n - 1, config="c.yaml")
    check_launch(layout, ids(n), local_processes=1, config="c.yaml")


def test_reserving_a_first_gpu_needs_gpu_ids():
    layout = split_gpus(ids(4), [0])
    assert launcher_args(layout, ids(4)) == ["--num_processes", "3", "--gpu_ids", "1,2,3"]
    with pytest.raises(GpuLayoutError, match="LOCAL_RANK 0 on GPU 0"):
        check_launch(layout, ids(4), local_processes=3, config="c.yaml")
    # after `--gpu_ids 1,2,3` accelerate sets CUDA_VISIBLE_DEVICES=1,2,3 for the ranks
    relaunched = visible_gpus({"CUDA_VISIBLE_DEVICES": "1,2,3"}, lambda: 4)
    check_launch(split_gpus(relaunched, [0]), relaunched, local_processes=3, config="c.yaml")
    assert train_command("c.yaml", layout, ids(4)) == \
        "axolotl train c.yaml -- --num_processes 3 --gpu_ids 1,2,3"


def test_more_processes_than_gpus_is_rejected():
    layout = split_gpus(ids(2), [5])
    with pytest.raises(GpuLayoutError, match="more processes than GPUs"):
        check_launch(layout, ids(2), local_processes=3, config="c.yaml")


def test_visible_gpus_follow_cuda_visible_devices():
    assert visible_gpus({}, lambda: 3) == ["0", "1", "2"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "4, 6"}, lambda: 8) == ["4", "6"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, lambda: 8) == []
    layout = split_gpus(visible_gpus({"CUDA_VISIBLE_DEVICES": "4,6"}, lambda: 8), None)
    assert layout.server == ("6",) and layout.trainer == ("4",)
