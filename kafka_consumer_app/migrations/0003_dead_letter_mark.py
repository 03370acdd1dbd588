"""The operator console's record of dead letters replayed or resolved (one row per parked message)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kafka_consumer_app", "0002_consumer_control"),
    ]

    operations = [
        migrations.CreateModel(
            name="DeadLetterMark",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("dlq_topic", models.CharField(help_text="The dead-letter topic, by its Kafka name.", max_length=249)),
                ("partition", models.IntegerField()),
                ("offset", models.BigIntegerField()),
                (
                    "state",
                    models.CharField(choices=[("replayed", "replayed"), ("resolved", "resolved")], max_length=16),
                ),
                (
                    "original_topic",
                    models.CharField(blank=True, help_text="Where a replayed copy went.", max_length=249),
                ),
                ("changed_by", models.CharField(help_text="The user who replayed or resolved it.", max_length=150)),
                ("changed_at", models.DateTimeField(help_text="When it was replayed or resolved.")),
            ],
            options={
                "verbose_name": "dead letter",
                "verbose_name_plural": "dead letters",
                "permissions": [
                    ("view_dead_letter_payload", "Can see the whole payload of a dead letter"),
                    ("replay_dead_letters", "Can replay dead letters to their original topic"),
                    ("resolve_dead_letters", "Can mark dead letters resolved"),
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("dlq_topic", "partition", "offset"), name="kca_dead_letter_unique")
                ],
            },
        ),
    ]
