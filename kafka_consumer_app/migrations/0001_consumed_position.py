"""The positions table of OFFSET_STORE = "database"."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    operations = [
        migrations.CreateModel(
            name="ConsumedPosition",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("group", models.CharField(help_text="The Kafka consumer group.", max_length=255)),
                ("topic", models.CharField(help_text="The Kafka topic, with its prefix.", max_length=249)),
                ("partition", models.IntegerField()),
                ("next_offset", models.BigIntegerField(default=-1)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"verbose_name": "consumed position"},
        ),
        migrations.AddConstraint(
            model_name="consumedposition",
            constraint=models.UniqueConstraint(fields=("group", "topic", "partition"), name="kca_position_unique"),
        ),
    ]
