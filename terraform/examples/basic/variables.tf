variable "region" {
  type        = string
  description = "AWS region to deploy to."
  default     = "eu-west-1"
}

variable "vpc_id" {
  type        = string
  description = "Existing VPC."
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "Public subnets of the VPC (NLB), in two or three availability zones."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets with a NAT gateway (relays, EFS, MSK), in the same availability zones."
}

variable "image" {
  type        = string
  description = "Relay image built with infra/Dockerfile and pushed to a registry (ECR recommended), pinned by digest."
}

variable "domain" {
  type        = string
  description = "Domain name of the relays, e.g. rt.example.com; certificates for it are obtained over ACME."
}

variable "route53_zone_id" {
  type        = string
  description = "Route 53 hosted zone of domain, to create its alias record to the NLB. Empty: create the DNS record yourself."
  default     = ""
}

variable "acme_email" {
  type        = string
  description = "ACME account contact."
  default     = ""
}

variable "acme_staging" {
  type        = bool
  description = "Use Let's Encrypt's staging CA (untrusted certificates, generous rate limits) while trying things out."
  default     = true
}

variable "jwks_url" {
  type        = string
  description = "JWKS URL of the identity provider that signs the clients' tokens."
}

variable "app_origin" {
  type        = string
  description = "Origin of the web app whose browsers connect, e.g. https://app.example.com (empty: same origin only)."
  default     = ""
}

variable "use_msk" {
  type        = bool
  description = "Create an MSK cluster (true) or use external_brokers (false)."
  default     = true
}

variable "external_brokers" {
  type        = list(string)
  description = "Bootstrap brokers of an existing Kafka-compatible cluster (Redpanda Cloud, ...), when use_msk is false."
  default     = []
}

variable "external_sasl_username" {
  type        = string
  description = "SASL/SCRAM user of the external cluster (empty: no SASL)."
  default     = ""
}

variable "external_sasl_password_secret_arn" {
  type        = string
  description = "Secrets Manager ARN of the external cluster's SASL password."
  default     = ""
}

variable "alarm_topic_arn" {
  type        = string
  description = "SNS topic for CloudWatch alarms (empty: none)."
  default     = ""
}
