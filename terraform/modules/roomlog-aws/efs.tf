# Shared certificate storage: every relay mounts the same EFS access point at
# var.tls_storage_path. certmagic locks in the storage, so one relay obtains
# or renews each certificate and the others load it.

resource "aws_efs_file_system" "certs" {
  creation_token   = "${var.name}-certs"
  encrypted        = true
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"
  tags             = merge(local.tags, { Name = "${var.name}-certs" })

  lifecycle_policy {
    transition_to_ia = "AFTER_30_DAYS"
  }
}

resource "aws_efs_mount_target" "certs" {
  for_each        = toset(var.private_subnet_ids)
  file_system_id  = aws_efs_file_system.certs.id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs.id]
}

# The image runs as 65532:65532 (distroless nonroot).
resource "aws_efs_access_point" "certs" {
  file_system_id = aws_efs_file_system.certs.id

  posix_user {
    uid = 65532
    gid = 65532
  }

  root_directory {
    path = "/roomlog-certs"
    creation_info {
      owner_uid   = 65532
      owner_gid   = 65532
      permissions = "0750"
    }
  }

  tags = merge(local.tags, { Name = "${var.name}-certs" })
}

# Only through the access point, only over TLS, only by the relay task role.
resource "aws_efs_file_system_policy" "certs" {
  file_system_id = aws_efs_file_system.certs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "RelayTasksThroughAccessPoint"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.task.arn }
        Action    = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
        Resource  = aws_efs_file_system.certs.arn
        Condition = {
          StringEquals = { "elasticfilesystem:AccessPointArn" = aws_efs_access_point.certs.arn }
          Bool         = { "aws:SecureTransport" = "true" }
        }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "*"
        Resource  = aws_efs_file_system.certs.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}
