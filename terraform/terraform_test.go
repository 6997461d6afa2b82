// Package terraform holds the Terraform configuration of roomlog's AWS
// deployment (modules/roomlog-aws, examples/basic). Terraform's own checks
// (terraform validate, plan) need the AWS provider, which CI cannot download;
// this test checks what can be checked offline: every .tf file parses as HCL,
// every variable has a type and a description, every output a description,
// providers are pinned, and no secret is written down.
package terraform

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// secretPatterns match credentials that must never be in the repository.
var secretPatterns = []struct {
	name string
	re   *regexp.Regexp
}{
	{"AWS access key id", regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"private key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)},
	{"AWS secret access key", regexp.MustCompile(`(?i)aws_secret_access_key\s*=\s*"?[A-Za-z0-9/+=]{40}`)},
}

// literalSecret matches name = "literal" where name looks secret; names of
// references to a secret (..._arn, ..._file) are allowed.
var literalSecret = regexp.MustCompile(`(?i)\b([a-z0-9_]*(?:password|passwd|secret|token)[a-z0-9_]*)\s*=\s*"[^"$%{][^"]*"`)

// sensitiveName matches names of attributes and variables that hold secrets
// (but not ARNs or ids that point at one).
var sensitiveName = regexp.MustCompile(`(?i)(password|passwd|secret|token|private_key)`)
var referenceName = regexp.MustCompile(`(?i)(_arn|_id|_ids|_arns|_file|_path|_url)$`)

// tfFiles lists the .tf files under the current folder.
func tfFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".terraform" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".tf") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no .tf files found")
	}
	return files
}

func parse(name string, src []byte) (*hclsyntax.Body, hcl.Diagnostics) {
	f, diags := hclparse.NewParser().ParseHCL(src, name)
	if diags.HasErrors() {
		return nil, diags
	}
	return f.Body.(*hclsyntax.Body), nil
}

// checkFile returns the problems of one .tf file's body.
func checkFile(name string, body *hclsyntax.Body) []string {
	var problems []string
	add := func(rng hcl.Range, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s", name, rng.Start.Line, fmt.Sprintf(format, args...)))
	}
	for _, b := range body.Blocks {
		switch b.Type {
		case "variable":
			v := b.Labels[0]
			if _, ok := b.Body.Attributes["type"]; !ok {
				add(b.DefRange(), "variable %q has no type", v)
			}
			if !nonEmptyString(b.Body.Attributes["description"]) {
				add(b.DefRange(), "variable %q has no description", v)
			}
			if sensitiveName.MatchString(v) && !referenceName.MatchString(v) {
				if !isTrue(b.Body.Attributes["sensitive"]) {
					add(b.DefRange(), "variable %q looks secret but is not sensitive = true", v)
				}
				if d := b.Body.Attributes["default"]; d != nil && nonEmptyString(d) {
					add(d.SrcRange, "variable %q has a non-empty default", v)
				}
			}
		case "output":
			if !nonEmptyString(b.Body.Attributes["description"]) {
				add(b.DefRange(), "output %q has no description", b.Labels[0])
			}
		case "terraform":
			for _, rp := range b.Body.Blocks {
				if rp.Type != "required_providers" {
					continue
				}
				for pname, attr := range rp.Body.Attributes {
					val, diags := attr.Expr.Value(nil)
					if diags.HasErrors() || !val.Type().IsObjectType() {
						add(attr.SrcRange, "provider %q: want { source = ..., version = ... }", pname)
						continue
					}
					if !val.Type().HasAttribute("source") || val.GetAttr("source").AsString() == "" {
						add(attr.SrcRange, "provider %q has no source", pname)
					}
					if !val.Type().HasAttribute("version") {
						add(attr.SrcRange, "provider %q has no version constraint", pname)
						continue
					}
					if v := val.GetAttr("version").AsString(); !strings.Contains(v, "<") && !strings.Contains(v, "~>") && !regexp.MustCompile(`^\s*=?\s*\d`).MatchString(v) {
						add(attr.SrcRange, "provider %q version %q has no upper bound (use ~> or < to pin it)", pname, v)
					}
				}
			}
		}
	}
	// Literal secrets in any attribute, at any depth.
	var walk func(*hclsyntax.Body)
	walk = func(bd *hclsyntax.Body) {
		for aname, attr := range bd.Attributes {
			if sensitiveName.MatchString(aname) && !referenceName.MatchString(aname) && nonEmptyString(attr) {
				add(attr.SrcRange, "attribute %q is a literal secret: take it from a sensitive variable or Secrets Manager", aname)
			}
		}
		for _, b := range bd.Blocks {
			walk(b.Body)
		}
	}
	walk(body)
	return problems
}

// nonEmptyString reports whether attr is a literal, non-empty string.
func nonEmptyString(attr *hclsyntax.Attribute) bool {
	if attr == nil {
		return false
	}
	v, diags := attr.Expr.Value(nil)
	return !diags.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() && v.AsString() != ""
}

func isTrue(attr *hclsyntax.Attribute) bool {
	if attr == nil {
		return false
	}
	v, diags := attr.Expr.Value(nil)
	return !diags.HasErrors() && v.Type() == cty.Bool && v.True()
}

func checkSecrets(name string, src []byte) []string {
	var problems []string
	for i, line := range strings.Split(string(src), "\n") {
		for _, p := range secretPatterns {
			if p.re.MatchString(line) {
				problems = append(problems, fmt.Sprintf("%s:%d: looks like a %s", name, i+1, p.name))
			}
		}
		for _, m := range literalSecret.FindAllStringSubmatch(line, -1) {
			if !referenceName.MatchString(m[1]) {
				problems = append(problems, fmt.Sprintf("%s:%d: looks like a literal secret (%s)", name, i+1, m[1]))
			}
		}
	}
	return problems
}

func TestTerraformFiles(t *testing.T) {
	modules := map[string]bool{} // folder -> has terraform { required_providers }
	for _, name := range tfFiles(t) {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		body, diags := parse(name, src)
		if diags.HasErrors() {
			t.Errorf("%s does not parse: %s", name, diags.Error())
			continue
		}
		for _, p := range checkFile(name, body) {
			t.Error(p)
		}
		for _, p := range checkSecrets(name, src) {
			t.Error(p)
		}
		dir := filepath.Dir(name)
		if _, ok := modules[dir]; !ok {
			modules[dir] = false
		}
		for _, b := range body.Blocks {
			if b.Type != "terraform" {
				continue
			}
			for _, inner := range b.Body.Blocks {
				if inner.Type == "required_providers" {
					modules[dir] = true
				}
			}
			if _, ok := b.Body.Attributes["required_version"]; !ok {
				t.Errorf("%s: terraform block without required_version", name)
			}
		}
	}
	for dir, ok := range modules {
		if !ok {
			t.Errorf("%s: no terraform { required_providers { ... } } block", dir)
		}
	}
}

// TestNoSecretsInOtherFiles scans the other files kept here (READMEs,
// example variable files) for credentials.
func TestNoSecretsInOtherFiles(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".tf") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, p := range checkSecrets(path, src) {
			t.Error(p)
		}
		if strings.HasSuffix(path, ".tfvars") || strings.HasSuffix(path, ".tfvars.example") {
			if _, diags := parse(path, src); diags.HasErrors() {
				t.Errorf("%s does not parse: %s", path, diags.Error())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestChecksCatchProblems makes sure the checks above do fail on bad input.
func TestChecksCatchProblems(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"variable without type", `variable "a" { description = "x" }`, "has no type"},
		{"variable without description", `variable "a" { type = string }`, "has no description"},
		{"variable with empty description", `variable "a" {
  type        = string
  description = ""
}`, "has no description"},
		{"output without description", `output "o" { value = 1 }`, "has no description"},
		{"secret variable not sensitive", `variable "db_password" {
  type        = string
  description = "x"
}`, "not sensitive"},
		{"secret variable with a default", `variable "db_password" {
  type        = string
  description = "x"
  sensitive   = true
  default     = "hunter2"
}`, "non-empty default"},
		{"literal password attribute", `resource "x" "y" {
  nested {
    password = "hunter2"
  }
}`, "literal secret"},
		{"unpinned provider", `terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.0" }
  }
}`, "no upper bound"},
		{"provider without version", `terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}`, "no version constraint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, diags := parse("case.tf", []byte(c.src))
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			got := strings.Join(checkFile("case.tf", body), "\n")
			if !strings.Contains(got, c.want) {
				t.Errorf("problems %q, want one containing %q", got, c.want)
			}
		})
	}
	for _, ok := range []string{
		`variable "kafka_sasl_password_secret_arn" {
  type        = string
  description = "ARN"
  default     = ""
}`,
		`variable "p" {
  type        = string
  description = "x"
}
output "o" {
  description = "y"
  value       = var.p
}`,
	} {
		body, diags := parse("ok.tf", []byte(ok))
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		if p := checkFile("ok.tf", body); len(p) > 0 {
			t.Errorf("false positives: %v", p)
		}
	}
	fake := "AKIA" + strings.Repeat("ABCDEFGH", 2)
	for _, s := range []string{"key = \"" + fake + "\"", "-----BEGIN RSA " + "PRIVATE KEY-----", `password = "hunter2"`} {
		if len(checkSecrets("s", []byte(s))) == 0 {
			t.Errorf("secret %q not caught", s)
		}
	}
	for _, s := range []string{`password = ""`, `password = var.x`, `secret_string = var.kafka_sasl_password`, `sasl_password_secret_arn = "arn:aws:secretsmanager:eu-west-1:1:secret:x"`} {
		if p := checkSecrets("s", []byte(s)); len(p) > 0 {
			t.Errorf("false positive on %q: %v", s, p)
		}
	}
}
