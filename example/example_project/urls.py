"""The example service serves no pages; its work happens in consume_events."""

urlpatterns: list = []
