# A roomlog relay fleet: 3+ relays on ECS Fargate behind a Network Load
# Balancer on 443/80, certificates over ACME shared on EFS, and the log on a
# new MSK cluster (or an external Kafka-compatible one).

module "roomlog" {
  source = "../../modules/roomlog-aws"

  name               = "roomlog"
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
  image              = var.image

  tls_domains = [var.domain]
  acme_email  = var.acme_email
  acme_ca     = var.acme_staging ? "https://acme-staging-v02.api.letsencrypt.org/directory" : ""

  jwks_url        = var.jwks_url
  allowed_origins = var.app_origin != "" ? [var.app_origin] : []

  desired_count = 3
  min_count     = 3
  max_count     = 9

  create_msk              = var.use_msk
  msk_broker_count        = length(var.private_subnet_ids) >= 3 ? 3 : 2 * length(var.private_subnet_ids)
  kafka_bootstrap_brokers = var.external_brokers

  # External clusters such as Redpanda Cloud need TLS and SASL/SCRAM.
  kafka_tls                      = !var.use_msk
  kafka_sasl_mechanism           = var.external_sasl_username != "" ? "SCRAM-SHA-256" : ""
  kafka_sasl_username            = var.external_sasl_username
  kafka_sasl_password_secret_arn = var.external_sasl_password_secret_arn

  alarm_actions = var.alarm_topic_arn != "" ? [var.alarm_topic_arn] : []

  tags = {
    environment = "example"
  }
}

resource "aws_route53_record" "relays" {
  count   = var.route53_zone_id != "" ? 1 : 0
  zone_id = var.route53_zone_id
  name    = var.domain
  type    = "A"

  alias {
    name                   = module.roomlog.nlb_dns_name
    zone_id                = module.roomlog.nlb_zone_id
    evaluate_target_health = true
  }
}
