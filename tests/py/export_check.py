"""What the test apps in this folder share: a wrapper that records every
export an OpenTelemetry exporter did not get acknowledged, so a script can
exit non-zero instead of passing with data silently lost."""

failures = []


def checked(exporter):
    """Wraps an exporter so that every non-successful export is recorded."""
    original = exporter.export

    def export(batch, *args, **kwargs):
        result = original(batch, *args, **kwargs)
        # Compare by name: the result enums were renamed across SDK versions.
        if getattr(result, "name", result) != "SUCCESS":
            failures.append(f"{type(exporter).__name__}: {result}")
        return result

    exporter.export = export
    return exporter
