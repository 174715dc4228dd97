"""Control: services that act on what the other blocks observe. Today `doctor`, the failure playbooks run as
checks against a deployment or a model version."""
