data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  tags = merge({ "app" = "roomlog", "roomlog:name" = var.name }, var.tags)

  kafka_brokers = var.create_msk ? (
    var.kafka_tls ? aws_msk_cluster.this[0].bootstrap_brokers_tls : aws_msk_cluster.this[0].bootstrap_brokers
  ) : join(",", var.kafka_bootstrap_brokers)

  # Whether a password was given is not secret; the password is.
  sasl_password_given = nonsensitive(var.kafka_sasl_password != "")

  # The SASL password: an existing secret, a secret made here from the
  # sensitive variable, or none.
  sasl_secret_arn = var.kafka_sasl_password_secret_arn != "" ? var.kafka_sasl_password_secret_arn : (
    local.sasl_password_given ? aws_secretsmanager_secret.sasl[0].arn : ""
  )

  # Relay settings as ROOMLOG_* variables (one per flag of roomlog relay).
  base_environment = {
    ROOMLOG_BROKERS    = local.kafka_brokers
    ROOMLOG_TOPIC      = var.topic
    ROOMLOG_PARTITIONS = tostring(var.partitions)
    ROOMLOG_LOG_FORMAT = "json"
    # TLS with ACME: --listen is the wss:// listener, --http-listen answers
    # HTTP-01 challenges and redirects to https.
    ROOMLOG_TLS_DOMAIN  = join(",", var.tls_domains)
    ROOMLOG_TLS_STORAGE = var.tls_storage_path
    ROOMLOG_LISTEN      = ":${var.container_tls_port}"
    ROOMLOG_HTTP_LISTEN = ":${var.container_http_port}"
    # Leave a little of the stop timeout for the process to exit.
    ROOMLOG_SHUTDOWN_TIMEOUT = "${max(var.stop_timeout_seconds - 5, 1)}s"
  }
  optional_environment = merge(
    var.acme_email != "" ? { ROOMLOG_ACME_EMAIL = var.acme_email } : {},
    var.acme_ca != "" ? { ROOMLOG_ACME_CA = var.acme_ca } : {},
    var.jwks_url != "" ? { ROOMLOG_JWKS_URL = var.jwks_url } : {},
    var.jwt_issuer != "" ? { ROOMLOG_JWT_ISSUER = var.jwt_issuer } : {},
    var.jwt_audience != "" ? { ROOMLOG_JWT_AUDIENCE = var.jwt_audience } : {},
    length(var.allowed_origins) > 0 ? { ROOMLOG_ALLOWED_ORIGINS = join(",", var.allowed_origins) } : {},
    # Kafka TLS and SASL: variable names the relay reads once it has these
    # flags (roomlog relay --help); until then use MSK's in-VPC plaintext.
    var.kafka_tls ? { ROOMLOG_KAFKA_TLS = "true" } : {},
    var.kafka_sasl_mechanism != "" ? {
      ROOMLOG_KAFKA_SASL_MECHANISM = var.kafka_sasl_mechanism
      ROOMLOG_KAFKA_SASL_USERNAME  = var.kafka_sasl_username
    } : {},
  )
  environment = merge(local.base_environment, local.optional_environment, var.environment)

  secrets = merge(
    local.sasl_secret_arn != "" ? { ROOMLOG_KAFKA_SASL_PASSWORD = local.sasl_secret_arn } : {},
    var.secret_arns,
  )
}

# A secret made from var.kafka_sasl_password (only when no ARN is given).
resource "aws_secretsmanager_secret" "sasl" {
  count                   = local.sasl_password_given && var.kafka_sasl_password_secret_arn == "" ? 1 : 0
  name_prefix             = "${var.name}-kafka-sasl-"
  description             = "SASL password of the roomlog relays' Kafka user"
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "sasl" {
  count         = length(aws_secretsmanager_secret.sasl)
  secret_id     = aws_secretsmanager_secret.sasl[0].id
  secret_string = var.kafka_sasl_password
}
