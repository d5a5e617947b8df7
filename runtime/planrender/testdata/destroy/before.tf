resource "terraform_data" "gone" {
  input = { name = "bye", list = [1, 2] }
}

resource "terraform_data" "counted" {
  count = 3
  input = count.index
}

resource "terraform_data" "kept" {
  input = "kept"
}
