from jaxopt_mat.cli import run

run()
