# ---------------------------------------------------------------- general

variable "name" {
  type        = string
  description = "Name prefix of every resource (ECS cluster and service, NLB, security groups, log group, ...)."
  default     = "roomlog"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}$", var.name))
    error_message = "name must be 2-23 characters of lower-case letters, digits and dashes, starting with a letter (it prefixes the NLB and target group names, which AWS limits to 32 characters)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

# ---------------------------------------------------------------- network

variable "vpc_id" {
  type        = string
  description = "VPC to deploy into."
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "Public subnets for the Network Load Balancer, one per availability zone (at least two)."

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "Give at least two public subnets, in different availability zones."
  }
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets for the relay tasks, EFS mount targets and MSK brokers, one per availability zone (at least two). They need outbound internet access (a NAT gateway) for ACME, image pulls and CloudWatch, unless assign_public_ip is true."

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Give at least two private subnets, in different availability zones."
  }
}

variable "assign_public_ip" {
  type        = bool
  description = "Give each task a public IP (for subnets without a NAT gateway). Inbound traffic is still limited to the load balancer by the task security group."
  default     = false
}

variable "allowed_client_cidrs" {
  type        = list(string)
  description = "IPv4 CIDR blocks allowed to reach the load balancer on ports 443 and 80."
  default     = ["0.0.0.0/0"]
}

# ---------------------------------------------------------------- relays

variable "image" {
  type        = string
  description = "Relay container image built from infra/Dockerfile, preferably pinned by digest (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/roomlog@sha256:...)."
}

variable "cpu_architecture" {
  type        = string
  description = "Fargate CPU architecture: X86_64, or ARM64 (Graviton, about 20% cheaper; the image must have an arm64 variant)."
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "task_cpu" {
  type        = number
  description = "Fargate task CPU units (1024 = 1 vCPU)."
  default     = 1024
}

variable "task_memory" {
  type        = number
  description = "Fargate task memory in MiB (must be valid for task_cpu)."
  default     = 2048
}

variable "desired_count" {
  type        = number
  description = "Relays at first deployment; auto scaling moves it between min_count and max_count afterwards."
  default     = 3
}

variable "min_count" {
  type        = number
  description = "Fewest relays auto scaling keeps."
  default     = 3

  validation {
    condition     = var.min_count >= 1
    error_message = "min_count must be at least 1."
  }
}

variable "max_count" {
  type        = number
  description = "Most relays auto scaling starts."
  default     = 12
}

variable "cpu_target_percent" {
  type        = number
  description = "Average CPU utilisation of the service that target-tracking auto scaling aims for."
  default     = 60
}

variable "container_tls_port" {
  type        = number
  description = "Port the relay's TLS listener binds in the container (the NLB maps 443 to it; a non-root container cannot bind 443 itself on Fargate)."
  default     = 8443
}

variable "container_http_port" {
  type        = number
  description = "Port the relay's plain HTTP listener binds in the container (ACME HTTP-01 challenges and the redirect to HTTPS; the NLB maps 80 to it)."
  default     = 8080
}

variable "tls_domains" {
  type        = list(string)
  description = "Domain names the relays obtain certificates for over ACME. Point them (DNS) at the NLB before the first deployment."
}

variable "acme_email" {
  type        = string
  description = "Contact address for the ACME account (expiry notices). Empty: none."
  default     = ""
}

variable "acme_ca" {
  type        = string
  description = "ACME directory URL. Empty: the relay's default (Let's Encrypt production). Use https://acme-staging-v02.api.letsencrypt.org/directory while testing."
  default     = ""
}

variable "jwks_url" {
  type        = string
  description = "JWKS URL of the token issuer whose JWTs clients present (the relay's --jwks-url). The relays refuse to start without an authentication method: this one, or another given through environment/secrets."
  default     = ""
}

variable "jwt_issuer" {
  type        = string
  description = "Required token issuer (iss), or empty (the relay's --jwt-issuer)."
  default     = ""
}

variable "jwt_audience" {
  type        = string
  description = "Required token audience (aud), or empty (the relay's --jwt-audience)."
  default     = ""
}

variable "allowed_origins" {
  type        = list(string)
  description = "Browser origins allowed to open WebSockets (the relay's --allowed-origins), e.g. [\"https://app.example.com\"]. Empty: the relay's default (same origin only)."
  default     = []
}

variable "tls_storage_path" {
  type        = string
  description = "Path in the container where the shared EFS certificate storage is mounted (the relay's --tls-storage)."
  default     = "/var/lib/roomlog/certs"
}

variable "topic" {
  type        = string
  description = "Kafka topic of the room events (the relay's --topic)."
  default     = "roomlog.events"
}

variable "partitions" {
  type        = number
  description = "Partitions of the topic when the relays create it (the relay's --partitions)."
  default     = 16
}

variable "environment" {
  type        = map(string)
  description = "Extra environment of the relay container (ROOMLOG_* variables, one per relay flag; see roomlog relay --help). Applied last, so it can override the module's own."
  default     = {}
}

variable "secret_arns" {
  type        = map(string)
  description = "Extra secret environment variables of the relay container: variable name to Secrets Manager secret ARN (or SSM parameter ARN). The execution role may read exactly these."
  default     = {}
}

variable "stop_timeout_seconds" {
  type        = number
  description = "Seconds between SIGTERM (the relay drains: closes sockets with 1001, flushes the producer) and SIGKILL. At most 120 on Fargate."
  default     = 30

  validation {
    condition     = var.stop_timeout_seconds >= 2 && var.stop_timeout_seconds <= 120
    error_message = "stop_timeout_seconds must be between 2 and 120."
  }
}

variable "deregistration_delay_seconds" {
  type        = number
  description = "How long the NLB keeps existing connections to a draining task before closing them."
  default     = 30
}

variable "health_check_protocol" {
  type        = string
  description = "NLB health check protocol against the TLS target group: HTTPS (GET health_check_path, certificate not verified) or TCP."
  default     = "HTTPS"

  validation {
    condition     = contains(["HTTPS", "HTTP", "TCP"], var.health_check_protocol)
    error_message = "health_check_protocol must be HTTPS, HTTP or TCP."
  }
}

variable "health_check_path" {
  type        = string
  description = "Path of the NLB health check for HTTP(S) checks: /readyz answers 200 once the relay has replayed the log and while it is not draining."
  default     = "/readyz"
}

# ---------------------------------------------------------------- Kafka log

variable "create_msk" {
  type        = bool
  description = "Create an Amazon MSK cluster for the log. When false, give kafka_bootstrap_brokers (Redpanda Cloud, Confluent, self-managed Kafka)."
  default     = true
}

variable "kafka_bootstrap_brokers" {
  type        = list(string)
  description = "host:port seed brokers of an existing Kafka-compatible cluster, used when create_msk is false."
  default     = []
}

variable "kafka_broker_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the external brokers (create_msk false), for the task security group's egress rule. Default: anywhere."
  default     = ["0.0.0.0/0"]
}

variable "kafka_broker_ports" {
  type        = list(number)
  description = "TCP ports of the external brokers (create_msk false), for the task security group's egress rule."
  default     = [9092]
}

variable "kafka_tls" {
  type        = bool
  description = "Connect to Kafka over TLS (MSK: use the TLS bootstrap brokers on 9094). Passed to the relay as ROOMLOG_KAFKA_TLS."
  default     = false
}

variable "kafka_sasl_mechanism" {
  type        = string
  description = "SASL mechanism for an external cluster (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), or empty for none. Passed as ROOMLOG_KAFKA_SASL_MECHANISM."
  default     = ""

  validation {
    condition     = contains(["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], var.kafka_sasl_mechanism)
    error_message = "kafka_sasl_mechanism must be empty, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
  }
}

variable "kafka_sasl_username" {
  type        = string
  description = "SASL user name (not secret). Passed as ROOMLOG_KAFKA_SASL_USERNAME."
  default     = ""
}

variable "kafka_sasl_password_secret_arn" {
  type        = string
  description = "ARN of an existing Secrets Manager secret holding the SASL password (preferred: the password never enters Terraform state). Injected as ROOMLOG_KAFKA_SASL_PASSWORD."
  default     = ""
}

variable "kafka_sasl_password" {
  type        = string
  description = "SASL password, when no kafka_sasl_password_secret_arn is given: the module stores it in a new Secrets Manager secret (it is then also in the Terraform state, which must be protected)."
  default     = ""
  sensitive   = true
}

variable "msk_kafka_version" {
  type        = string
  description = "Kafka version of the MSK cluster."
  default     = "3.9.x"
}

variable "msk_broker_count" {
  type        = number
  description = "MSK broker nodes: a multiple of the number of private subnets."
  default     = 3
}

variable "msk_instance_type" {
  type        = string
  description = "MSK broker instance type (kafka.t3.small for trials; kafka.m7g.large or larger for production)."
  default     = "kafka.t3.small"
}

variable "msk_volume_size_gib" {
  type        = number
  description = "EBS storage per MSK broker, in GiB."
  default     = 100
}

variable "msk_client_broker_encryption" {
  type        = string
  description = "MSK encryption between clients and brokers: TLS, TLS_PLAINTEXT (both listeners) or PLAINTEXT. Traffic stays in the VPC either way."
  default     = "TLS_PLAINTEXT"

  validation {
    condition     = contains(["TLS", "TLS_PLAINTEXT", "PLAINTEXT"], var.msk_client_broker_encryption)
    error_message = "msk_client_broker_encryption must be TLS, TLS_PLAINTEXT or PLAINTEXT."
  }
}

# ---------------------------------------------------------------- observability

variable "log_retention_days" {
  type        = number
  description = "CloudWatch Logs retention of the relay (and MSK broker) logs, in days."
  default     = 30
}

variable "container_insights" {
  type        = bool
  description = "Enable CloudWatch Container Insights on the ECS cluster (per-task CPU, memory, network metrics; billed as custom metrics)."
  default     = true
}

variable "alarm_actions" {
  type        = list(string)
  description = "ARNs (e.g. SNS topics) notified by the CloudWatch alarms. Empty: alarms are created without actions."
  default     = []
}
