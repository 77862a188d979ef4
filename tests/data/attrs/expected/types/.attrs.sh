declare _under_score9='kept'
declare -A attrs=(['b']=1 ['k']='v' ['num']=1 ['we ird']='x'\''y' ['z']='' )
declare builder='/bin/sh'
declare empty=''
declare -A emptyAttrs=()
declare -a emptyList=()
declare f=
declare int=42
declare intfloat=2
declare -a list=('a' 'b c' 3 1  '' ''\''' )
declare n=''
declare name='attrs-types'
declare neg=-7
declare -A outputs=(['dev']='/nib/store/dbq9g6nmnhaxfy5nnk2qn5kvvs6j0a4a-attrs-types-dev' ['out']='/nib/store/fr6wyb2pvkyk5x4vhn6vwfn6l0bf4452-attrs-types' )
declare -a passAsFile=('str' )
declare str='it'\''s a "test" $x \ ` 
 newline	tab'
declare system='x86_64-linux'
declare t=1
declare utf8='grüße ✓'
