"""The example service's pages: the Django admin, with kafka_consumer_app's operator console."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
