"""Every node's ROS parameters carry a description, and ranges that ROS itself enforces
(parrot_bringup.node_runtime.Param; the safety.* ones come from parrot_core.safety)."""

from __future__ import annotations

import importlib
import os

import pytest

pytest.importorskip("rclpy")
from parrot_bringup.node_runtime import Param, declare  # noqa: E402

pytestmark = pytest.mark.ros

NODE_MODULES = ("policy", "teleop", "episodes", "usb_camera", "scripted", "recorder", "sim_twin",
                "hardware_bridge")


@pytest.mark.parametrize("name", NODE_MODULES)
def test_every_parameter_says_what_it_is_and_numbers_have_a_range_that_holds_the_default(name):
    """Each PARAMS entry is a Param with a description; a range, where given, contains the
    default (else the node could not start with its own defaults); choices contain it too."""
    params = importlib.import_module(f"parrot_bringup.{name}").PARAMS
    for key, spec in params.items():
        assert isinstance(spec, Param), f"{name}.{key} is a bare default"
        assert len(spec.description) >= 10, f"{name}.{key}: no description"
        if spec.range is not None:
            assert spec.range[0] <= spec.default <= spec.range[1], (name, key, spec)
        if spec.choices:
            assert spec.default in spec.choices, (name, key, spec)


def test_ros_refuses_a_value_outside_a_range_and_publishes_the_descriptor():
    """A parameter override outside the range fails at declaration (the node does not start
    with it); the description and range are what `ros2 param describe` shows."""
    import rclpy
    from rclpy.exceptions import InvalidParameterValueException
    from rclpy.parameter import Parameter

    params = {"rate_hz": Param(10.0, "a rate for this test (Hz)", (0.1, 100.0)),
              "workers": Param(2, "a count for this test", (1, 8)),
              "mode": Param("a", "a mode for this test", choices=("a", "b"))}
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=1 + (os.getpid() * 7) % 200)
    try:
        node = rclpy.create_node("param_test", context=ctx)
        values = declare(node, params)
        assert values == {"rate_hz": 10.0, "workers": 2, "mode": "a"}
        d = node.describe_parameter("rate_hz")
        assert d.description == "a rate for this test (Hz)"
        assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0.1, 100.0)
        assert node.describe_parameter("workers").integer_range[0].to_value == 8
        assert "one of: a, b" in node.describe_parameter("mode").additional_constraints
        result = node.set_parameters([Parameter("rate_hz", value=500.0)])[0]
        assert not result.successful and node.get_parameter("rate_hz").value == 10.0
        node.destroy_node()
        bad = rclpy.create_node("param_test_bad", context=ctx,
                                parameter_overrides=[Parameter("workers", value=0)])
        with pytest.raises(InvalidParameterValueException):
            declare(bad, params)
        bad.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
