# Security groups: clients → NLB (443, 80) → tasks (container ports);
# tasks → EFS (2049), → Kafka, → the internet on 443 (ACME, ECR, CloudWatch,
# Secrets Manager, unless VPC endpoints serve those).

resource "aws_security_group" "nlb" {
  name_prefix = "${var.name}-nlb-"
  description = "roomlog NLB: WebSocket clients on 443 (TLS) and 80 (ACME HTTP-01, redirect)"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-nlb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "nlb_client" {
  for_each = {
    for pair in setproduct(var.allowed_client_cidrs, [443, 80]) : "${pair[0]}-${pair[1]}" => { cidr = pair[0], port = pair[1] }
  }
  security_group_id = aws_security_group.nlb.id
  description       = "clients on ${each.value.port}"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_tasks" {
  for_each                     = toset([tostring(var.container_tls_port), tostring(var.container_http_port)])
  security_group_id            = aws_security_group.nlb.id
  description                  = "to relay tasks on ${each.value}"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
  tags                         = local.tags
}

resource "aws_security_group" "tasks" {
  name_prefix = "${var.name}-tasks-"
  description = "roomlog relay tasks"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-tasks" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_nlb" {
  for_each                     = toset([tostring(var.container_tls_port), tostring(var.container_http_port)])
  security_group_id            = aws_security_group.tasks.id
  description                  = "from the NLB (traffic and health checks) on ${each.value}"
  referenced_security_group_id = aws_security_group.nlb.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS: ACME CA, ECR image pulls, CloudWatch Logs, Secrets Manager"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_efs" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "NFS to the certificate storage"
  referenced_security_group_id = aws_security_group.efs.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_msk" {
  count                        = var.create_msk ? 1 : 0
  security_group_id            = aws_security_group.tasks.id
  description                  = "Kafka (MSK plaintext 9092, TLS 9094)"
  referenced_security_group_id = aws_security_group.msk[0].id
  ip_protocol                  = "tcp"
  from_port                    = 9092
  to_port                      = 9094
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_external_kafka" {
  for_each = var.create_msk ? {} : {
    for pair in setproduct(var.kafka_broker_cidrs, var.kafka_broker_ports) : "${pair[0]}-${pair[1]}" => { cidr = pair[0], port = pair[1] }
  }
  security_group_id = aws_security_group.tasks.id
  description       = "external Kafka brokers on ${each.value.port}"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  tags              = local.tags
}

resource "aws_security_group" "efs" {
  name_prefix = "${var.name}-efs-"
  description = "roomlog certificate storage (EFS)"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-efs" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_tasks" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from relay tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  tags                         = local.tags
}

resource "aws_security_group" "msk" {
  count       = var.create_msk ? 1 : 0
  name_prefix = "${var.name}-msk-"
  description = "roomlog MSK brokers"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-msk" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "msk_from_tasks" {
  count                        = var.create_msk ? 1 : 0
  security_group_id            = aws_security_group.msk[0].id
  description                  = "Kafka from relay tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 9092
  to_port                      = 9094
  tags                         = local.tags
}
