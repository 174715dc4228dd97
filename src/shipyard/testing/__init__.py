"""Conformance suites: what a plug-in's own tests run to prove it keeps Shipyard's contract.

    from shipyard.testing import check_flavor
    check_flavor(MyFlavor(), fitted_model, X.head(20))

Importing this package imports neither pytest nor any ML library."""

from shipyard.testing.flavors import check_flavor, flavor_checks
from shipyard.testing.report import CheckFailed, CheckOutcome, CheckReport

__all__ = ["CheckFailed", "CheckOutcome", "CheckReport", "check_flavor", "flavor_checks"]
