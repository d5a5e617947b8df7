resource "terraform_data" "counted" {
  count = 1
  input = count.index
}

resource "terraform_data" "kept" {
  input = "kept"
}
