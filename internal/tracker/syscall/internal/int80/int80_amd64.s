#include "textflag.h"

// func Getppid() int32
TEXT ·Getppid(SB), NOSPLIT, $0-4
	MOVL	$64, AX
	INT	$0x80
	MOVL	AX, ret+0(FP)
	RET
