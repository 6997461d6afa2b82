# Optional Amazon MSK cluster for the log. With create_msk = false the relays
# use kafka_bootstrap_brokers instead (Redpanda Cloud, Confluent Cloud,
# self-managed Kafka).

resource "aws_msk_configuration" "this" {
  count          = var.create_msk ? 1 : 0
  name           = "${var.name}-log"
  kafka_versions = [var.msk_kafka_version]
  description    = "roomlog events log"

  # Acks from the relays are acks=all: with 3 replicas and min.insync 2 an
  # acknowledged record survives the loss of a broker.
  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=${min(3, var.msk_broker_count)}
    min.insync.replicas=${min(2, var.msk_broker_count)}
    unclean.leader.election.enable=false
    num.partitions=${var.partitions}
  PROPERTIES
}

resource "aws_cloudwatch_log_group" "msk" {
  count             = var.create_msk ? 1 : 0
  name              = "/aws/msk/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_msk_cluster" "this" {
  count                  = var.create_msk ? 1 : 0
  cluster_name           = "${var.name}-log"
  kafka_version          = var.msk_kafka_version
  number_of_broker_nodes = var.msk_broker_count

  broker_node_group_info {
    instance_type   = var.msk_instance_type
    client_subnets  = var.private_subnet_ids
    security_groups = [aws_security_group.msk[0].id]
    storage_info {
      ebs_storage_info {
        volume_size = var.msk_volume_size_gib
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this[0].arn
    revision = aws_msk_configuration.this[0].latest_revision
  }

  # Network-level access only (security groups); no client authentication,
  # so the relays need no AWS credentials for Kafka.
  client_authentication {
    unauthenticated = true
  }

  encryption_info {
    encryption_in_transit {
      client_broker = var.msk_client_broker_encryption
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = var.msk_broker_count % length(var.private_subnet_ids) == 0
      error_message = "msk_broker_count must be a multiple of the number of private subnets."
    }
    precondition {
      condition     = var.kafka_tls || var.msk_client_broker_encryption != "TLS"
      error_message = "msk_client_broker_encryption = TLS has no plaintext listener: set kafka_tls = true."
    }
  }
}
