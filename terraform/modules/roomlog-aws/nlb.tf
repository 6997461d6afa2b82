# A Network Load Balancer passing TCP through: the relays terminate TLS
# themselves (certificates over ACME, shared on EFS), so the NLB never sees
# plaintext and WebSocket connections are plain long-lived TCP flows to it.

resource "aws_lb" "this" {
  name                             = "${var.name}-nlb"
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = var.public_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  tags                             = local.tags
}

resource "aws_lb_target_group" "tls" {
  name                 = "${var.name}-tls"
  port                 = var.container_tls_port
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = var.deregistration_delay_seconds
  # Close flows to a deregistered task once the delay is over, so clients
  # reconnect to another relay (and resume with since).
  connection_termination = true
  preserve_client_ip     = "true"

  health_check {
    protocol            = var.health_check_protocol
    port                = "traffic-port"
    path                = var.health_check_protocol == "TCP" ? null : var.health_check_path
    matcher             = var.health_check_protocol == "TCP" ? null : "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_target_group" "http" {
  name                   = "${var.name}-http"
  port                   = var.container_http_port
  protocol               = "TCP"
  target_type            = "ip"
  vpc_id                 = var.vpc_id
  deregistration_delay   = var.deregistration_delay_seconds
  connection_termination = true
  preserve_client_ip     = "true"

  # Port 80 serves ACME HTTP-01 challenges and redirects: a TCP check is
  # enough (a redirect is not a sign of readiness).
  health_check {
    protocol            = "TCP"
    port                = "traffic-port"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_listener" "tls" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.tls.arn
  }

  tags = local.tags
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.http.arn
  }

  tags = local.tags
}
