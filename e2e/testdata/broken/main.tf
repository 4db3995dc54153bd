resource "terraform_data" "bad" {
  input = "x"
  no_such_argument = true
}
