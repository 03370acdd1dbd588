"""The control table of the operator console: whether a topic's consumers are paused."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("kafka_consumer_app", "0001_consumed_position")]

    operations = [
        migrations.CreateModel(
            name="ConsumerControl",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("topic", models.CharField(help_text="The Kafka topic, with its prefix.", max_length=249, unique=True)),
                (
                    "paused",
                    models.BooleanField(default=False, help_text="Whether the topic's consumers fetch nothing."),
                ),
                (
                    "changed_by",
                    models.CharField(blank=True, help_text="The user who last paused or resumed.", max_length=150),
                ),
                (
                    "changed_at",
                    models.DateTimeField(blank=True, help_text="When the topic was last paused or resumed.", null=True),
                ),
            ],
            options={
                "verbose_name": "consumer group",
                "verbose_name_plural": "consumer groups",
                "permissions": [("pause_consumers", "Can pause and resume the consumers of a topic")],
            },
        ),
    ]
