/* Entry points of the subcommands. Each receives the arguments after its own name and
 * returns the process exit status. */
#pragma once

int cmd_prepare(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_eval_fid(int argc, char **argv);
